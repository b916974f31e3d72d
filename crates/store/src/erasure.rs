//! Erasure: a holder's account and data removed on their request or after inactivity, and the
//! retention of test results and decided appeals. The statements are written once, in a form
//! both databases run; each backend adds its check-ins (kept its own way) and makes the deleted
//! bytes unreadable in its files ([`crate::HolderStore::scrub_erased`]).

/// The statements that erase one holder (`$1`, the holder id) besides their check-ins, children
/// first and the holder row (sealed personal data, identity and phone lookup hashes) last: every
/// table that names the holder, by id, by the identity hash of their document (lab reports) or
/// by their phone's lookup hash (one-time codes). The audit log is kept: it names the holder by
/// id only, and the erasure is recorded in it.
pub const ERASE: [&str; 14] = [
    "DELETE FROM lab_reports WHERE identity_hash IN (SELECT identity_hash FROM holders WHERE id = $1)",
    "DELETE FROM one_time_codes WHERE phone_hash IN (SELECT phone_hash FROM holders WHERE id = $1)",
    "DELETE FROM sessions WHERE holder = $1",
    "DELETE FROM consents WHERE holder = $1",
    "DELETE FROM read_digests WHERE holder = $1",
    "DELETE FROM health_declarations WHERE holder = $1",
    "DELETE FROM travel_declarations WHERE holder = $1",
    "DELETE FROM daily_reports WHERE holder = $1",
    "DELETE FROM test_results WHERE holder = $1",
    "DELETE FROM exposures WHERE holder = $1",
    "DELETE FROM cases WHERE holder = $1",
    "DELETE FROM overrides WHERE holder = $1",
    "DELETE FROM appeals WHERE holder = $1",
    "DELETE FROM holders WHERE id = $1",
];

/// The tables [`ERASE`] deletes from, in its order: those whose files a scrub rewrites.
pub fn erased_tables() -> impl Iterator<Item = &'static str> {
    ERASE.iter().filter_map(|sql| {
        sql.strip_prefix("DELETE FROM ")
            .and_then(|rest| rest.split_whitespace().next())
    })
}

/// Holders inactive since `$1` (no sign-in since, or never and registered before) with no fact
/// since then that could hold a colour (a case, a test, an exposure, a declaration, a report)
/// and no manual change in force at `$2`, by id, at most `$3`. Each backend adds `AND` its own
/// condition that no check-in of the holder is stored.
pub const INACTIVE_HOLDERS: &str = "SELECT h.id FROM holders h
     WHERE COALESCE(h.last_active_at, h.created_at) < $1
       AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.holder = h.id AND c.confirmed_at >= $1)
       AND NOT EXISTS (SELECT 1 FROM test_results t WHERE t.holder = h.id AND t.sampled_at >= $1)
       AND NOT EXISTS (SELECT 1 FROM exposures e WHERE e.holder = h.id AND e.contact_end >= $1)
       AND NOT EXISTS (SELECT 1 FROM health_declarations d WHERE d.holder = h.id AND d.at >= $1)
       AND NOT EXISTS (SELECT 1 FROM travel_declarations d WHERE d.holder = h.id AND d.at >= $1)
       AND NOT EXISTS (SELECT 1 FROM daily_reports r WHERE r.holder = h.id AND r.at >= $1)
       AND NOT EXISTS (SELECT 1 FROM overrides o WHERE o.holder = h.id AND o.expires_at >= $2)";

/// Test results sampled before `$1`.
pub const PURGE_TESTS: &str = "DELETE FROM test_results WHERE sampled_at < $1";

/// Appeals decided before `$1` (open ones stay whatever their age).
pub const PURGE_DECIDED_APPEALS: &str =
    "DELETE FROM appeals WHERE decided_at IS NOT NULL AND decided_at < $1";

/// What retention of personal data removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersonalPurge {
    /// Holders erased for inactivity.
    pub holders: u64,
    /// Test results past their retention.
    pub tests: u64,
    /// Decided appeals past their retention.
    pub appeals: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_erasure_statement_names_its_table() {
        let tables: Vec<_> = erased_tables().collect();
        assert_eq!(tables.len(), ERASE.len());
        assert_eq!(tables.first(), Some(&"lab_reports"));
        assert_eq!(tables.last(), Some(&"holders"), "the holder row goes last");
        assert!(
            tables
                .iter()
                .all(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }
}
