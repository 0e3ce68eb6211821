//! Form bodies (`application/x-www-form-urlencoded`), read by hand so that a bad one
//! gets the UI's own error page rather than an extractor's plain-text refusal.

pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> FormData {
        FormData(
            form_urlencoded::parse(body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The first value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value for `name`, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_decoded_and_the_first_one_wins() {
        let form = FormData::parse(b"email=a%40b.co&role=admin&role=analyst&note=two+words");
        assert_eq!(form.get("email"), Some("a@b.co"));
        assert_eq!(form.get("role"), Some("admin"));
        assert_eq!(form.text("note"), "two words");
        assert_eq!(form.get("missing"), None);
        assert_eq!(form.text("missing"), "");
    }
}
