//! Event ids. Without a client `id`, an event gets a random, time-ordered UUIDv7. With
//! one, its id is derived from the application and the client id (a UUIDv8 over
//! SHA-256), so a resend gets the same id and the store's unique key keeps one copy.
//!
//! A derived id is random, and random keys cost the store's unique index one page per
//! insert once the index outgrows the cache: a store fed with client ids wrote 51k,
//! 28k, then 22k events/s over its first three million events. So when the client id is
//! itself a UUIDv7 (what the SDKs send), the derived id keeps its 48-bit millisecond
//! prefix: new ids land at the index's right edge, like ids without a client id, and
//! the id is still a pure function of the application and the client id.
//!
//! Before that rule (stores created before migration 0009), a UUIDv7 client id derived
//! a fully hashed id: [`legacy_twin`] names it, so that a store can recognise a resend
//! of an event it stored under the old rule.

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
    let mut bytes = hashed(app_id, client_id);
    if let Some(millis) = v7_millis(client_id) {
        bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    }
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The id a store created before migration 0009 gave this client id, with the client
/// id's own time (Unix milliseconds), when the two rules differ: only for a UUIDv7
/// client id. A store upgraded with events in it checks for that id too while the
/// client ids it sees were made before the upgrade (plus a day for client clocks), so
/// that a retry across the upgrade is not stored twice.
pub fn legacy_twin(app_id: i64, client_id: &str) -> Option<(Uuid, i64)> {
    let millis = i64::try_from(v7_millis(client_id)?).ok()?;
    let twin = uuid::Builder::from_custom_bytes(hashed(app_id, client_id)).into_uuid();
    Some((twin, millis))
}

fn hashed(app_id: i64, client_id: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update(b"eye.event-id.v1\0");
    hasher.update(app_id.to_be_bytes());
    hasher.update(client_id.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes
}

/// The millisecond timestamp of a client id written as a UUIDv7 (any form `uuid`
/// parses; the hash still covers the exact text, so two spellings stay two keys).
fn v7_millis(client_id: &str) -> Option<u64> {
    let uuid = Uuid::try_parse(client_id).ok()?;
    (uuid.get_version_num() == 7).then(|| {
        let b = uuid.as_bytes();
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    })
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

    #[test]
    fn other_client_ids_keep_the_ids_they_had() {
        // Pinned (computed apart, with Python's hashlib): a store keeps ids derived
        // before this rule, so a resend of a non-v7 client id must get the same id.
        let v4 = "0b3f0a52-6c1e-4d55-9a53-2f8f3c1f5e10";
        assert_eq!(
            event_id_for_client_id(7, v4).to_string(),
            "281e54bd-d082-836b-9b57-92abe519949b"
        );
        assert_eq!(
            event_id_for_client_id(1, "x").to_string(),
            "1720a0c4-004b-8edc-8336-cc84e2dd359f"
        );
        assert_eq!(legacy_twin(7, v4), None);
        assert_eq!(legacy_twin(7, "x"), None);
    }

    #[test]
    fn a_v7_client_id_keeps_its_time_prefix() {
        let earlier = Uuid::now_v7().to_string();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = Uuid::now_v7().to_string();
        let (a, b) = (
            event_id_for_client_id(1, &earlier),
            event_id_for_client_id(1, &later),
        );
        assert_eq!(
            a.as_bytes()[..6],
            Uuid::parse_str(&earlier).unwrap().as_bytes()[..6]
        );
        assert!(a < b, "ids follow their client ids' time");
        assert_eq!(a.get_version_num(), 8);
        assert_eq!(a, event_id_for_client_id(1, &earlier));
        assert_ne!(a, event_id_for_client_id(2, &earlier));
        // The same UUID spelled in capitals is another key, as it was before.
        assert_ne!(a, event_id_for_client_id(1, &earlier.to_uppercase()));
    }

    #[test]
    fn a_legacy_twin_is_named_only_for_v7_client_ids() {
        let client_id = "019a0000-0000-7000-8000-000000000001";
        let (twin, made) = legacy_twin(1, client_id).unwrap();
        assert_eq!(made, 0x019a_0000_0000);
        // The old rule: the whole id from the hash, the new one keeps the time prefix.
        assert_eq!(
            twin.as_bytes()[6..],
            event_id_for_client_id(1, client_id).as_bytes()[6..]
        );
        assert_ne!(twin, event_id_for_client_id(1, client_id));
        assert_eq!(twin.get_version_num(), 8);
    }
}
