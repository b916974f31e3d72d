//! Venues, devices and officer accounts on PostgreSQL.

use healthcode_domain::{DeviceId, OfficerId, Venue, VenueId};
use healthcode_store::rows::{DEVICE_COLS, OFFICER_COLS, VENUE_COLS, device_row, officer_row, venue_row};
use healthcode_store::rules;
use healthcode_store::{Device, NewVenue, Officer, Role, StaffStore, StoreError, StoreResult};
use time::OffsetDateTime;

use crate::PgStore;
use crate::rows::{db, each, one, returned_id};

impl StaffStore for PgStore {
    async fn insert_venue(&self, v: &NewVenue) -> StoreResult<Venue> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO venues (name, category, region, admission) VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    &v.name,
                    &v.category.as_str(),
                    &v.region.as_str(),
                    &v.admission.as_str(),
                ],
            )
            .await
            .map_err(db)?;
        Ok(v.stored(VenueId(returned_id(&row)?)))
    }

    async fn insert_venues(&self, batch: &[NewVenue]) -> StoreResult<Vec<Venue>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let n = i64::try_from(batch.len()).map_err(|_| StoreError::Refused("too many venues".into()))?;
        let names: Vec<&str> = batch.iter().map(|v| v.name.as_str()).collect();
        let categories: Vec<&str> = batch.iter().map(|v| v.category.as_str()).collect();
        let regions: Vec<&str> = batch.iter().map(|v| v.region.as_str()).collect();
        let admissions: Vec<&str> = batch.iter().map(|v| v.admission.as_str()).collect();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        // The ids are taken from the identity's sequence first, so that each venue's id is known
        // by its place in the batch (the order of RETURNING rows is not promised).
        let ids = tx
            .query(
                "SELECT nextval(pg_get_serial_sequence('venues', 'id')) FROM generate_series(1, $1::bigint)",
                &[&n],
            )
            .await
            .map_err(db)?
            .iter()
            .map(returned_id)
            .collect::<StoreResult<Vec<i64>>>()?;
        tx.execute(
            "INSERT INTO venues (id, name, category, region, admission) OVERRIDING SYSTEM VALUE
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])",
            &[&ids, &names, &categories, &regions, &admissions],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(batch
            .iter()
            .zip(ids)
            .map(|(v, id)| v.stored(VenueId(id)))
            .collect())
    }

    async fn venue(&self, id: VenueId) -> StoreResult<Option<Venue>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {VENUE_COLS} FROM venues WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), venue_row)
    }

    async fn venues(&self) -> StoreResult<Vec<Venue>> {
        let c = self.conn().await?;
        let rows = c
            .query(&format!("SELECT {VENUE_COLS} FROM venues ORDER BY id"), &[])
            .await
            .map_err(db)?;
        each(&rows, venue_row)
    }

    async fn insert_device(&self, venue: VenueId, label: &str, key_hash: &[u8; 32]) -> StoreResult<Device> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO devices (venue, label, key_hash) VALUES ($1, $2, $3) RETURNING id",
                &[&venue.0, &label, &&key_hash[..]],
            )
            .await
            .map_err(|e| match db(e) {
                StoreError::NotFound(_) => StoreError::NotFound(format!("venue {venue}")),
                other => other,
            })?;
        Ok(Device {
            id: DeviceId(returned_id(&row)?),
            venue,
            label: label.to_owned(),
            key_hash: *key_hash,
            revoked_at: None,
        })
    }

    async fn device_by_key_hash(&self, key_hash: &[u8; 32]) -> StoreResult<Option<Device>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE key_hash = $1"),
                &[&&key_hash[..]],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), device_row)
    }

    async fn devices(&self, venue: Option<VenueId>) -> StoreResult<Vec<Device>> {
        let c = self.conn().await?;
        let venue = venue.map(|v| v.0);
        let rows = c
            .query(
                &format!(
                    "SELECT {DEVICE_COLS} FROM devices WHERE $1::bigint IS NULL OR venue = $1 ORDER BY id"
                ),
                &[&venue],
            )
            .await
            .map_err(db)?;
        each(&rows, device_row)
    }

    async fn revoke_device(&self, id: DeviceId, at: OffsetDateTime) -> StoreResult<Device> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(db)?;
        let row = tx
            .query_opt(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1 FOR UPDATE"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        let d = rules::revoke_device(id, one(row.as_ref(), device_row)?, at)?;
        tx.execute("UPDATE devices SET revoked_at = $1 WHERE id = $2", &[&at, &id.0])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(d)
    }

    async fn insert_officer(
        &self,
        username: &str,
        role: Role,
        password_hash: &str,
        must_change_password: bool,
        at: OffsetDateTime,
    ) -> StoreResult<Officer> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO officers (username, role, password_hash, must_change_password, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&username, &role.as_str(), &password_hash, &must_change_password, &at],
            )
            .await
            .map_err(db)?;
        Ok(Officer {
            id: OfficerId(returned_id(&row)?),
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
    }

    async fn officer(&self, id: OfficerId) -> StoreResult<Option<Officer>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {OFFICER_COLS} FROM officers WHERE id = $1"),
                &[&id.0],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), officer_row)
    }

    async fn officer_by_username(&self, username: &str) -> StoreResult<Option<Officer>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {OFFICER_COLS} FROM officers WHERE username = $1"),
                &[&username],
            )
            .await
            .map_err(db)?;
        one(row.as_ref(), officer_row)
    }

    async fn officers(&self) -> StoreResult<Vec<Officer>> {
        let c = self.conn().await?;
        let rows = c
            .query(&format!("SELECT {OFFICER_COLS} FROM officers ORDER BY id"), &[])
            .await
            .map_err(db)?;
        each(&rows, officer_row)
    }

    async fn set_officer_password(
        &self,
        id: OfficerId,
        password_hash: &str,
        must_change_password: bool,
    ) -> StoreResult<()> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE officers SET password_hash = $1, must_change_password = $2 WHERE id = $3",
                &[&password_hash, &must_change_password, &id.0],
            )
            .await
            .map_err(db)?;
        rules::updated(n, || format!("officer {id}"))
    }

    async fn set_officer_phone(&self, id: OfficerId, phone: &str, at: OffsetDateTime) -> StoreResult<()> {
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE officers SET phone = $1, phone_proven_at = $2 WHERE id = $3",
                &[&phone, &at, &id.0],
            )
            .await
            .map_err(db)?;
        rules::updated(n, || format!("officer {id}"))
    }
}
