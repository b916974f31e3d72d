//! A holder's colour, computed by the policy from the stored facts, and the signed code that
//! carries it. Colours are cached per holder until the earliest of: thirty seconds, the moment a
//! reason ends, or a write through this node that concerns the holder (a declaration, a test, a
//! case, an override; a new risk area clears every entry).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration as StdDuration, Instant};

use healthcode_domain::{HolderId, RiskArea};
use healthcode_policy::{Policy, Status, evaluate};
use healthcode_store::Store;
use healthcode_token::keystore::Keystore;
use healthcode_token::{CodeClaims, NameHint, Signer, Token};
use time::{Duration, OffsetDateTime};

use crate::now;
use crate::problem::ApiError;

/// How long a computed colour is reused at most.
pub const STATUS_TTL: Duration = Duration::seconds(30);
const RISK_AREA_TTL: StdDuration = StdDuration::from_secs(30);
const CACHE_LIMIT: usize = 2_000_000;

/// What a code shows, computed once and reused while it holds.
#[derive(Debug)]
pub struct CodeView {
    /// The colour and its reasons.
    pub status: Status,
    /// The masked name.
    pub name_hint: String,
}

/// Colours and the code signer, cached: what [`crate::App::code_view`] and
/// [`crate::App::sign_code`] read through.
#[derive(Debug, Default)]
pub struct StatusCache {
    views: Mutex<HashMap<HolderId, (Arc<CodeView>, OffsetDateTime)>>,
    /// Bumped by [`StatusCache::invalidate_all`]: a colour computed across a bump (under a policy
    /// or risk areas since replaced) is answered but not kept.
    generation: AtomicU64,
    areas: RwLock<Option<(Arc<Vec<RiskArea>>, Instant)>>,
    signer: RwLock<Option<(Arc<Signer>, OffsetDateTime, Instant)>>,
}

impl StatusCache {
    /// Forgets a holder's cached colour.
    pub fn invalidate(&self, holder: &HolderId) {
        if let Ok(mut m) = self.views.lock() {
            m.remove(holder);
        }
    }

    /// Forgets every cached colour and the risk areas.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.views.lock() {
            m.clear();
        }
        if let Ok(mut a) = self.areas.write() {
            *a = None;
        }
    }
}

impl StatusCache {
    async fn risk_areas_cached<S: Store>(&self, store: &S) -> Result<Arc<Vec<RiskArea>>, ApiError> {
        if let Ok(guard) = self.areas.read()
            && let Some((areas, at)) = guard.as_ref()
            && at.elapsed() < RISK_AREA_TTL
        {
            return Ok(areas.clone());
        }
        let areas = Arc::new(store.risk_areas().await?);
        if let Ok(mut guard) = self.areas.write() {
            *guard = Some((areas.clone(), Instant::now()));
        }
        Ok(areas)
    }

    /// The holder's colour now, with reasons, and the name hint.
    pub async fn code_view<S: Store>(
        &self,
        store: &S,
        policy: &Policy,
        holder: &HolderId,
    ) -> Result<Arc<CodeView>, ApiError> {
        let t = now();
        let generation = self.generation.load(Ordering::SeqCst);
        if let Ok(m) = self.views.lock()
            && let Some((v, until)) = m.get(holder)
            && t < *until
        {
            return Ok(v.clone());
        }
        let row = store
            .holder(holder)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such holder".into()))?;
        let facts = store.holder_facts(holder).await?;
        let areas = self.risk_areas_cached(store).await?;
        let status = evaluate(policy, &facts, &areas, t);
        let mut until = t + STATUS_TTL;
        for r in &status.reasons {
            if r.until > t {
                until = until.min(r.until);
            }
        }
        if let Some(g) = status.green_at
            && g > t
        {
            until = until.min(g);
        }
        let view = Arc::new(CodeView {
            status,
            name_hint: row.name_hint,
        });
        if let Ok(mut m) = self.views.lock()
            && self.generation.load(Ordering::SeqCst) == generation
        {
            if m.len() >= CACHE_LIMIT {
                m.retain(|_, (_, u)| *u > t);
                if m.len() >= CACHE_LIMIT {
                    m.clear();
                }
            }
            m.insert(holder.clone(), (view.clone(), until));
        }
        Ok(view)
    }

    /// The signer of holder codes at `t`, and the end of its key's validity. Re-read from the
    /// key store once a minute, so that a key whose time has come takes over.
    fn signer(
        &self,
        keystore: &Keystore,
        t: OffsetDateTime,
    ) -> Result<(Arc<Signer>, OffsetDateTime), ApiError> {
        if let Ok(guard) = self.signer.read()
            && let Some((s, not_after, at)) = guard.as_ref()
            && at.elapsed() < StdDuration::from_secs(60)
            && t < *not_after
        {
            return Ok((s.clone(), *not_after));
        }
        let not_after = keystore
            .signing_key(t)
            .map_err(|e| ApiError::internal("no signing key", e))?
            .not_after;
        let signer = Arc::new(
            keystore
                .active_signer(t, None)
                .map_err(|e| ApiError::internal("no signer", e))?,
        );
        if let Ok(mut guard) = self.signer.write() {
            *guard = Some((signer.clone(), not_after, Instant::now()));
        }
        Ok((signer, not_after))
    }

    /// Signs a code for a holder's current view, valid for `ttl` (never beyond its key); returns
    /// it with its expiry.
    pub fn sign_code(
        &self,
        keystore: &Keystore,
        policy: &Policy,
        holder: &HolderId,
        view: &CodeView,
        ttl: Duration,
    ) -> Result<(Token, OffsetDateTime), ApiError> {
        let t = now();
        let (signer, key_end) = self.signer(keystore, t)?;
        let expires_at = (t + ttl).min(key_end);
        let green_from = view
            .status
            .green_at
            .map(|g| g.to_offset(policy.utc_offset()).date());
        let claims = CodeClaims {
            issuer: signer.issuer().clone(),
            subject: holder.clone(),
            issued_at: t,
            expires_at,
            colour: view.status.colour,
            name_hint: NameHint::parse(&view.name_hint).ok(),
            green_from: if view.status.colour == healthcode_token::Colour::Green {
                None
            } else {
                green_from
            },
        };
        let token = signer
            .issue(&claims)
            .map_err(|e| ApiError::internal("cannot sign a code", e))?;
        Ok((token, expires_at))
    }
}
