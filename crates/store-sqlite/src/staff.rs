//! Venues, devices and officer accounts on SQLite.

use healthcode_domain::{DeviceId, OfficerId, Venue, VenueId};
use healthcode_store::rows::{DEVICE_COLS, OFFICER_COLS, VENUE_COLS, device_row, officer_row, venue_row};
use healthcode_store::rules;
use healthcode_store::{Device, NewVenue, Officer, Role, StaffStore, StoreError, StoreResult};
use rusqlite::{Transaction, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::rows::{backend, query_all, query_first, ts};

/// Inserts a venue in the caller's transaction; returns it with its id.
fn insert_venue(tx: &Transaction<'_>, v: &NewVenue) -> StoreResult<Venue> {
    tx.prepare_cached("INSERT INTO venues (name, category, region, admission) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut s| {
            s.execute(params![
                v.name,
                v.category.as_str(),
                v.region.as_str(),
                v.admission.as_str()
            ])
        })
        .map_err(backend)?;
    Ok(v.stored(VenueId(tx.last_insert_rowid())))
}

impl StaffStore for SqliteStore {
    async fn insert_venue(&self, v: &NewVenue) -> StoreResult<Venue> {
        self.write(|tx| insert_venue(tx, v))
    }

    async fn insert_venues(&self, batch: &[NewVenue]) -> StoreResult<Vec<Venue>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| batch.iter().map(|v| insert_venue(tx, v)).collect())
    }

    async fn venue(&self, id: VenueId) -> StoreResult<Option<Venue>> {
        let sql = format!("SELECT {VENUE_COLS} FROM venues WHERE id = ?1");
        self.read(|c| query_first(c, &sql, [id.0], venue_row))
    }

    async fn venues(&self) -> StoreResult<Vec<Venue>> {
        let sql = format!("SELECT {VENUE_COLS} FROM venues ORDER BY id");
        self.read(|c| query_all(c, &sql, [], venue_row))
    }

    async fn insert_device(&self, venue: VenueId, label: &str, key_hash: &[u8; 32]) -> StoreResult<Device> {
        self.write(|tx| {
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM venues WHERE id = ?1)",
                    [venue.0],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if !exists {
                return Err(StoreError::NotFound(format!("venue {venue}")));
            }
            tx.execute(
                "INSERT INTO devices (venue, label, key_hash) VALUES (?1, ?2, ?3)",
                params![venue.0, label, &key_hash[..]],
            )
            .map_err(backend)?;
            Ok(Device {
                id: DeviceId(tx.last_insert_rowid()),
                venue,
                label: label.to_owned(),
                key_hash: *key_hash,
                revoked_at: None,
            })
        })
    }

    async fn device_by_key_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLS} FROM devices WHERE key_hash = ?1");
        self.read(|c| query_first(c, &sql, [&key_hash[..]], device_row))
    }

    async fn devices(&self, venue: Option<VenueId>) -> StoreResult<Vec<Device>> {
        let sql = format!("SELECT {DEVICE_COLS} FROM devices WHERE ?1 IS NULL OR venue = ?1 ORDER BY id");
        self.read(|c| query_all(c, &sql, [venue.map(|v| v.0)], device_row))
    }

    async fn revoke_device(&self, id: DeviceId, at: OffsetDateTime) -> StoreResult<Device> {
        let sql = format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1");
        self.write(|tx| {
            let d = rules::revoke_device(id, query_first(tx, &sql, [id.0], device_row)?, at)?;
            tx.execute(
                "UPDATE devices SET revoked_at = ?1 WHERE id = ?2",
                params![ts(at), id.0],
            )
            .map_err(backend)?;
            Ok(d)
        })
    }

    async fn insert_officer(
        &self,
        username: &str,
        role: Role,
        password_hash: &str,
        must_change_password: bool,
        at: OffsetDateTime,
    ) -> StoreResult<Officer> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO officers (username, role, password_hash, must_change_password, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![username, role.as_str(), password_hash, must_change_password, ts(at)],
            )
            .map_err(backend)?;
            Ok(Officer {
                id: OfficerId(tx.last_insert_rowid()),
                username: username.to_owned(),
                role,
                password_hash: password_hash.to_owned(),
                must_change_password,
                created_at: at,
                disabled_at: None,
                second_factor: false,
            created_by: None,
            creation_approved_by: None,
            credentials_reset_by: None,
            credentials_reset_at: None,
            phone: None,
            phone_proven_at: None,
            })
        })
    }

    async fn officer(&self, id: OfficerId) -> StoreResult<Option<Officer>> {
        let sql = format!("SELECT {OFFICER_COLS} FROM officers WHERE id = ?1");
        self.read(|c| query_first(c, &sql, [id.0], officer_row))
    }

    async fn officer_by_username(&self, username: &str) -> StoreResult<Option<Officer>> {
        let sql = format!("SELECT {OFFICER_COLS} FROM officers WHERE username = ?1");
        self.read(|c| query_first(c, &sql, [username], officer_row))
    }

    async fn officers(&self) -> StoreResult<Vec<Officer>> {
        let sql = format!("SELECT {OFFICER_COLS} FROM officers ORDER BY id");
        self.read(|c| query_all(c, &sql, [], officer_row))
    }

    async fn set_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        must_change_password: bool,
    ) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE officers SET password_hash = ?1, must_change_password = ?2 WHERE id = ?3",
                    params![password_hash, must_change_password, id.0],
                )
                .map_err(backend)?;
            rules::updated(n as u64, || format!("officer {id}"))
        })
    }

    async fn set_officer_phone(&self, id: OfficerId, phone: &str, at: OffsetDateTime) -> StoreResult<()> {
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE officers SET phone = ?1, phone_proven_at = ?2 WHERE id = ?3",
                    params![phone, ts(at), id.0],
                )
                .map_err(backend)?;
            rules::updated(n as u64, || format!("officer {id}"))
        })
    }
}
