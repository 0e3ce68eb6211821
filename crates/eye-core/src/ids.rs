//! Event ids. Without a client `id`, an event gets a random, time-ordered UUIDv7. With
//! one, its id is derived from the application and the client id (a UUIDv8 over
//! SHA-256), so a resend gets the same id and the store's unique key keeps one copy.

use sha2::{Digest, Sha256};
use uuid::Uuid;

pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

/// The id of an accepted event: derived from its client `id` when it has one, so that a
/// resend gets the same id, and a new time-ordered one otherwise.
pub fn event_id(app_id: i64, client_id: Option<&str>) -> Uuid {
    match client_id {
        Some(client_id) => event_id_for_client_id(app_id, client_id),
        None => new_event_id(),
    }
}

pub fn event_id_for_client_id(app_id: i64, client_id: &str) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(b"eye.event-id.v1\0");
    hasher.update(app_id.to_be_bytes());
    hasher.update(client_id.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_map_to_stable_ids_scoped_by_application() {
        let a = event_id_for_client_id(1, "x");
        assert_eq!(a, event_id_for_client_id(1, "x"));
        assert_ne!(a, event_id_for_client_id(2, "x"));
        assert_ne!(a, event_id_for_client_id(1, "y"));
        assert_eq!(a.get_version_num(), 8);
    }
}
