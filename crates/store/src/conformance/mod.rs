//! The conformance suite every backend passes. A backend's tests implement [`Harness`] (a fresh,
//! empty store per test, and two ways to look behind its back) and invoke
//! [`conformance_tests!`](crate::conformance_tests), which expands to one test per check.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;

use healthcode_domain::*;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

use crate::*;

mod audit;
mod cases;
mod checkins;
mod consent;
mod credentials;
mod exposures;
mod health;
mod holders;
mod limits;
mod proposals;
mod staff;

pub use audit::*;
pub use cases::*;
pub use checkins::*;
pub use consent::*;
pub use credentials::*;
pub use exposures::*;
pub use health::*;
pub use holders::*;
pub use limits::*;
pub use proposals::*;
pub use staff::*;

/// A fresh store for one test, and access behind its back.
pub trait Harness: Send + Sync {
    /// The backend.
    type S: Store;
    /// The store under test.
    fn store(&self) -> &Self::S;
    /// Every stored byte of the holders table (or the whole database), as it lies on disk.
    fn raw_holder_bytes(&self) -> impl Future<Output = Vec<u8>> + Send;
    /// Every byte of the database's files that could hold a holder's personal data (every table
    /// erasure deletes from and their indexes, or the whole database with its logs), as the
    /// pages lie, not as rows read back: what an erasure must leave without the holder.
    fn raw_erasure_bytes(&self) -> impl Future<Output = Vec<u8>> + Send;
    /// Overwrites the `action` of audit entry `seq` directly in the database.
    fn tamper_audit(&self, seq: i64, action: &str) -> impl Future<Output = ()> + Send;
    /// Moves every acknowledged check-in from the backend's inbox (if it has one) into its indexed
    /// table now.
    fn flush_checkins(&self) -> impl Future<Output = ()> + Send;
    /// Copies indexed check-ins with `seq < below` back into the inbox, as a crash between a
    /// merge's copy and its delete would leave them (nothing, for a backend without an inbox).
    fn duplicate_into_inbox(&self, below: i64) -> impl Future<Output = ()> + Send;
}

/// Expands to one `#[tokio::test]` per conformance check; `$make` is an async expression giving a
/// fresh [`Harness`], or `None` when the backend is not available here (the test then passes with
/// a note: a backend's own harness decides when that is allowed).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            holders_round_trip_and_stay_unique,
            personal_data_is_never_stored_in_plaintext,
            venues_and_devices,
            checkins_are_idempotent_and_found_by_venue_and_holder,
            facts_come_back_for_the_colour_rules,
            travellers_to_a_region_are_counted_once_each,
            exposures_are_recorded_once,
            overrides_need_two_officers,
            appeals_are_kept,
            purge_deletes_what_is_older_than_retention,
                        audit_chain_verifies_and_names_a_tampered_entry,
            tree_heads_are_kept_and_show_a_rewrite_under_them,
            checkins_survive_the_merge_and_stay_unique,
            a_scan_reads_each_checkin_in_range_once,
            a_bulk_load_is_read_once_after_the_flush,
            one_time_codes_limit_guesses_and_sends,
            a_guess_under_another_challenge_costs_nothing,
            sessions_are_found_and_revoked,
            a_phone_change_moves_the_holder_and_ends_its_sessions,
            officers_are_unique_and_keep_roles,
            listings_and_appeal_decisions,
            purge_keeps_officers_and_live_sessions,
            exposures_wait_for_review,
            bulk_inserts,
            activity_counts_for_the_dashboard,
            a_store_in_order_takes_the_readiness_write,
            sign_in_failures_grow_lock_and_are_forgotten,
            the_last_active_admin_cannot_be_removed,
            second_factor_steps_and_recovery_codes_are_single_use,
            staff_sessions_are_listed_and_expire_when_idle,
            a_rotated_device_key_replaces_the_old_one,
            overrides_follow_the_approval_rule,
            a_risk_area_is_declared_changed_and_ended_on_approval,
            accounts_and_roles_change_only_on_approval,
            an_account_whose_credentials_the_proposer_reset_approves_nothing_of_theirs,
            an_approval_is_recorded_in_the_transaction_that_does_it,
            proposals_are_listed_paged_withdrawn_and_expire,
            bulk_exposure_decisions_wait_for_approval,
            a_policy_version_is_published_only_on_approval,
            a_store_with_holders_publishes_a_first_policy_only_when_pinned,
            lab_reports_are_unique_and_found_by_reference,
            a_case_reaches_its_holder_and_exposed_contacts_only,
            consents_are_kept_listed_and_revoked_by_their_holder_only,
            reads_are_counted_for_the_digest_which_is_sent_once_a_day,
            appeals_are_capped_per_holder,
            lists_come_in_pages,
            a_reused_sequence_number_is_refused,
            an_erased_holder_is_gone_down_to_the_bytes,
            retention_finds_inactive_holders_and_old_records,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(harness) = $make.await else { return };
                $crate::conformance::$name(&harness).await;
            }
        )*
    };
}

/// Every message in an error's chain of sources, the error's own first: for the backends' tests
/// that a failure keeps what the database said.
pub fn messages(e: &dyn std::error::Error) -> Vec<String> {
    std::iter::successors(Some(e), |e| e.source())
        .map(ToString::to_string)
        .collect()
}

/// Fixed keys so failures repeat.
pub fn crypto() -> Crypto {
    Crypto::new(&[(1, [7; 32])], 1, [3; 32]).unwrap()
}

const T: OffsetDateTime = datetime!(2026-11-20 08:00:00 UTC);

/// The challenge the tests' one-time codes are sent under.
const CHALLENGE: [u8; 32] = [5; 32];

/// Three officer accounts made on the command line's path two days before `T` (old enough to
/// approve), by id.
async fn three_officers<S: Store>(s: &S) -> [OfficerId; 3] {
    let mut ids = [OfficerId(0); 3];
    for (i, name) in ["officer-x", "officer-y", "officer-z"].iter().enumerate() {
        ids[i] = s
            .insert_officer(name, Role::Officer, "$argon2id$x", false, T - Duration::days(2))
            .await
            .unwrap()
            .id;
    }
    ids
}

fn hid(n: u8) -> HolderId {
    HolderId::from_bytes(&[n; 8]).unwrap()
}

/// A valid resident ID number: the 17 digits given, then their check character.
fn with_check_char(seventeen: &str) -> String {
    let digits: &[u8; 17] = seventeen.as_bytes().try_into().unwrap();
    format!("{seventeen}{}", resident_id_check_char(digits))
}

pub fn resident(n: u8) -> (SealedHolder, PersonalData) {
    let data = PersonalData {
        name: format!("Zhang Wei{n}"),
        resident_id: Some(with_check_char(&format!("110101199003078{n:02}"))),
        passport: None,
        nationality: None,
        birth_date: date!(1990 - 03 - 07),
        phone: format!("+86138001380{n:02}"),
        arrival: None,
    };
    let sealed = crypto()
        .seal_holder(hid(n), HolderKind::Resident, &data, "Z*** W.", T)
        .unwrap();
    (sealed, data)
}

pub fn visitor(n: u8) -> (SealedHolder, PersonalData) {
    let data = PersonalData {
        name: format!("Anna Eriksson{n}"),
        resident_id: None,
        passport: Some(format!("L8989{n:02}C3")),
        nationality: Some("SWE".into()),
        birth_date: date!(1974 - 08 - 12),
        phone: format!("+4670123456{n}"),
        arrival: Some(("SK997".into(), date!(2026 - 11 - 18))),
    };
    let sealed = crypto()
        .seal_holder(hid(n), HolderKind::Visitor, &data, "A*** E.", T)
        .unwrap();
    (sealed, data)
}

async fn venue<S: Store>(s: &S, name: &str, category: VenueCategory) -> Venue {
    s.insert_venue(&NewVenue {
        name: name.into(),
        category,
        region: Issuer::parse("CN-ZJ").unwrap(),
        admission: AdmissionPolicy::GreenOnly,
    })
    .await
    .unwrap()
}

fn exposure(case: CaseId, venue: VenueId, start: OffsetDateTime, grade: ExposureGrade) -> Exposure {
    Exposure {
        case,
        venue,
        case_interval: (start - Duration::minutes(10), start + Duration::minutes(50)),
        contact_interval: (start, start + Duration::minutes(90)),
        overlap_minutes: 50,
        grade,
    }
}

/// Scan number `i` of a run a scan every `apart`: five holders, three venues with a device each.
fn numbered_scan(i: i64, apart: Duration) -> CheckIn {
    CheckIn {
        holder: hid((i % 5) as u8),
        venue: VenueId(i % 3),
        device: DeviceId(i % 3),
        seq: i,
        at: T + apart * (i as i32),
        out: None,
    }
}

/// Residents `start..start + n` as a city's registry makes them, for bulk loads: each with its own
/// id (in no particular order), identity and phone, sealed with [`crypto()`]'s keys.
pub fn synthetic_holders(start: u64, n: u64) -> Vec<SealedHolder> {
    let c = crypto();
    (start..start + n)
        .map(|i| {
            // A thousand residents a birthday, from 1 January 1950.
            let born = date!(1950 - 01 - 01) + Duration::days((i / 1000) as i64);
            let digits = format!(
                "330106{:04}{:02}{:02}{:03}",
                born.year(),
                u8::from(born.month()),
                born.day(),
                i % 1000
            );
            let data = PersonalData {
                name: format!("Resident {i}"),
                resident_id: Some(with_check_char(&digits)),
                passport: None,
                nationality: None,
                birth_date: date!(1990 - 03 - 07),
                phone: format!("+86139{i:08}"),
                arrival: None,
            };
            // splitmix64's finaliser: a bijection, so the ids are distinct but unordered.
            let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let id = HolderId::from_bytes(&z.to_be_bytes()).unwrap();
            c.seal_holder(id, HolderKind::Resident, &data, "R*** ", T)
                .unwrap()
        })
        .collect()
}

/// Check-ins as a busy city makes them, for the backends' benchmarks: `n` scans with sequence
/// numbers from `start`, random 8-byte holders over 20,000 venues (each with its own scanner),
/// scan `i` at `t0 + i × spacing`. `state` is the generator's state (xorshift), so runs repeat.
pub fn synthetic_checkins(
    start: i64,
    n: i64,
    t0: OffsetDateTime,
    spacing: Duration,
    state: &mut u64,
) -> Vec<CheckIn> {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    (start..start + n)
        .map(|i| {
            let venue = (next() % 20_000) as i64;
            CheckIn {
                holder: HolderId::from_bytes(&next().to_be_bytes()).unwrap(),
                venue: VenueId(venue),
                device: DeviceId(venue),
                seq: i,
                at: t0 + spacing * (i as i32),
                out: None,
            }
        })
        .collect()
}
