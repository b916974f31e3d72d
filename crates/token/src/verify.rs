//! Offline verification of a holder code against a cached trust list.

use std::collections::BTreeSet;

use time::{Date, Duration, OffsetDateTime};

use crate::claims::{CodeClaims, Colour, Issuer, NameHint};
use crate::cose::{Token, Unverified, decode_claims};
use crate::error::VerifyError;
use crate::keys::{KeyId, Purpose};
use crate::trust_list::TrustList;

/// The clock-skew leeway verifiers allow by default: a code issued up to this far in the future of
/// the verifier's clock, or expired up to this long ago, is still accepted.
pub const DEFAULT_LEEWAY: Duration = Duration::seconds(60);

/// `t + d`, saturating instead of overflowing near the ends of time.
fn plus(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    })
}

/// A code that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCode {
    /// The claims.
    pub claims: CodeClaims,
    /// The key that signed it.
    pub kid: KeyId,
}

impl VerifiedCode {
    /// The colour.
    pub fn colour(&self) -> Colour {
        self.claims.colour
    }

    /// The masked name.
    pub fn name_hint(&self) -> Option<&NameHint> {
        self.claims.name_hint.as_ref()
    }

    /// The date from which the colour may turn green.
    pub fn green_from(&self) -> Option<Date> {
        self.claims.green_from
    }

    /// The expiry.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.claims.expires_at
    }
}

/// Verifies holder codes offline with a trust list.
#[derive(Debug, Clone)]
pub struct Verifier {
    trust: TrustList,
    accepted_issuers: Option<BTreeSet<Issuer>>,
    leeway: Duration,
}

impl Verifier {
    /// A verifier that accepts every issuer in the trust list, with [`DEFAULT_LEEWAY`].
    pub fn new(trust: TrustList) -> Verifier {
        Verifier {
            trust,
            accepted_issuers: None,
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// Accepts only codes of these issuers (a venue's policy on codes from other regions).
    pub fn with_accepted_issuers(mut self, issuers: impl IntoIterator<Item = Issuer>) -> Verifier {
        self.accepted_issuers = Some(issuers.into_iter().collect());
        self
    }

    /// Sets the clock-skew leeway.
    pub fn with_leeway(mut self, leeway: Duration) -> Verifier {
        self.leeway = leeway;
        self
    }

    /// The trust list in use.
    pub fn trust_list(&self) -> &TrustList {
        &self.trust
    }

    /// Replaces the trust list with a newer one.
    pub fn trust_list_mut(&mut self) -> &mut TrustList {
        &mut self.trust
    }

    /// Verifies the text form.
    pub fn verify_text(&self, text: &str, now: OffsetDateTime) -> Result<VerifiedCode, VerifyError> {
        self.verify(&Token::from_text(text)?, now)
    }

    /// Verifies a token: structure, purpose, key, signature, claims, issuer, time, in that order;
    /// the first failure is returned.
    pub fn verify(&self, token: &Token, now: OffsetDateTime) -> Result<VerifiedCode, VerifyError> {
        let envelope = Unverified::parse(token.as_bytes())?;
        if envelope.purpose != Purpose::HolderCode {
            return Err(VerifyError::WrongPurpose {
                found: envelope.purpose,
                expected: Purpose::HolderCode,
            });
        }
        let kid = envelope.kid;
        let key = self.trust.key(&kid).ok_or(VerifyError::UnknownKey { kid })?;
        if !key.purposes.contains(&Purpose::HolderCode) {
            return Err(VerifyError::KeyNotForPurpose {
                kid,
                purpose: Purpose::HolderCode,
            });
        }
        if now >= key.not_after {
            return Err(VerifyError::RetiredKey {
                kid,
                not_after: key.not_after,
            });
        }
        if plus(now, self.leeway) < key.not_before {
            return Err(VerifyError::KeyNotYetValid {
                kid,
                not_before: key.not_before,
            });
        }
        let payload = envelope.verify(&key.key)?;
        let claims = decode_claims(payload)?;
        if claims.issuer != key.issuer {
            return Err(VerifyError::WrongIssuer {
                claimed: claims.issuer,
                key_issuer: key.issuer.clone(),
                kid,
            });
        }
        if let Some(accepted) = &self.accepted_issuers
            && !accepted.contains(&claims.issuer)
        {
            return Err(VerifyError::UntrustedIssuer {
                issuer: claims.issuer,
            });
        }
        if plus(claims.issued_at, self.leeway) < key.not_before || claims.issued_at >= key.not_after {
            return Err(VerifyError::IssuedOutsideKeyValidity { kid });
        }
        if claims.issued_at > plus(now, self.leeway) {
            return Err(VerifyError::NotYetValid {
                issued_at: claims.issued_at,
            });
        }
        if now >= plus(claims.expires_at, self.leeway) {
            return Err(VerifyError::Expired {
                expired_at: claims.expires_at,
            });
        }
        Ok(VerifiedCode { claims, kid })
    }
}
