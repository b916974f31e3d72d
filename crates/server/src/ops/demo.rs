//! `healthcode demo`: a fresh data directory filled with a small region (venues of several
//! categories with a scanner each, staff accounts with one-time passwords, holders in all three
//! colours with reasons and a few days of check-ins), served with the console SMS adapter.
//!
//! Besides what it prints, it writes `demo.json` in the directory (mode 0600): the device keys and
//! a session token for every holder, which `healthcode loadgen` reads; and `identity-registry.json`,
//! the synthetic records of the demo's real-name registry (`identity.kind = "demo"`): every holder
//! it made, and a few people not registered yet, who can register themselves.

use std::path::{Path, PathBuf};

use healthcode_domain::{
    AdmissionPolicy, CheckIn, ConfirmedCase, Exposure, ExposureGrade, HealthDeclaration, HolderId, Issuer,
    RiskArea, RiskLevel, Symptom, TestResult, TravelDeclaration, VenueCategory,
};
use healthcode_exposure::simulate::{Rng, synthetic_resident_id};
use healthcode_policy::{Policy, evaluate};
use healthcode_store::{Crypto, Fact, HolderKind, NewVenue, PersonalData, Principal, Role, Session, Store};
use healthcode_store_sqlite::{OpenMode, SqliteStore};
use healthcode_token::NameHint;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::auth::{DEVICE_KEY_PREFIX, SESSION_PREFIX, new_secret, secret_hash};
use crate::config::Config;
use crate::datadir::{DataDir, write_secret};
use crate::identity::{DemoPerson, DemoRecords, DocumentJson, IdentityConfig, IdentityKind};
use crate::problem::BoxError;
use crate::sms::{SmsConfig, SmsKind};
use crate::{StartError, now};

/// The file that marks a directory as made by `demo` (so a later `demo` may replace it).
pub const MARKER: &str = ".healthcode-demo";
/// What `demo` leaves for `loadgen`.
pub const DEMO_FILE: &str = "demo.json";
/// The demo registry's records.
pub const REGISTRY_FILE: &str = "identity-registry.json";
/// How many people the demo registry knows who are not registered yet.
const UNREGISTERED: usize = 7;

/// A scanner device, as `demo.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoDevice {
    /// Device id.
    pub device: i64,
    /// Venue id.
    pub venue: i64,
    /// Venue name.
    pub venue_name: String,
    /// Category.
    pub category: String,
    /// Admission policy.
    pub admission: String,
    /// The device key.
    pub key: String,
}

/// A holder, as `demo.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoHolder {
    /// Phone (to sign in with a one-time code from the log).
    pub phone: String,
    /// Masked name.
    pub name_hint: String,
    /// Colour at creation.
    pub colour: String,
    /// A session token.
    pub session: String,
}

/// A staff account with its one-time password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoAccount {
    /// Username.
    pub username: String,
    /// Role.
    pub role: String,
    /// One-time password (replace at first sign-in).
    pub one_time_password: String,
}

/// Everything the demo made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoData {
    /// The API's base URL.
    pub base_url: String,
    /// Staff.
    pub accounts: Vec<DemoAccount>,
    /// Devices.
    pub devices: Vec<DemoDevice>,
    /// Holders.
    pub holders: Vec<DemoHolder>,
    /// People the demo registry confirms who are not registered yet: they can register
    /// themselves.
    #[serde(default)]
    pub unregistered: Vec<DemoPerson>,
}

const SURNAMES: [&str; 12] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
];
const GIVEN: [&str; 12] = [
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "婷",
];
const VISITORS: [(&str, &str); 6] = [
    ("Anna Berg", "SWE"),
    ("Lukas Weber", "DEU"),
    ("Emily Clarke", "GBR"),
    ("Daniel Moore", "USA"),
    ("Yuki Tanaka", "JPN"),
    ("Camille Martin", "FRA"),
];

/// Prepares a fresh demo directory at `dir` with `holders` holders, and returns the server
/// configuration to run it with and what was made.
pub async fn prepare(
    dir: &Path,
    listen: std::net::SocketAddr,
    holders: usize,
    policy_file: Option<&Path>,
) -> Result<(Config, DemoData), StartError> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            return Err(StartError::msg(format!(
                "{} exists and was not made by `healthcode demo`; choose another --dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir)
            .map_err(|e| StartError::caused(format!("cannot remove the old demo {}", dir.display()), e))?;
    }
    let config = Config {
        listen,
        data_dir: dir.to_owned(),
        sms: SmsConfig {
            kind: SmsKind::Console,
            url: None,
            ..SmsConfig::default()
        },
        identity: IdentityConfig {
            kind: IdentityKind::Demo,
            file: Some(dir.join(REGISTRY_FILE)),
            ..IdentityConfig::default()
        },
        policy_file: policy_file.map(Path::to_owned),
        // A demonstration moves on quickly: a holder registered at the counter signs in seconds
        // later, not a minute.
        otp_resend_seconds: 5,
        // A demonstration (and the load generator and browser story run on it) scans the same
        // few codes at the same doors again and again: each scan is its own check-in, not folded
        // into one visit.
        limits: crate::limits::LimitsConfig {
            same_visit_seconds: 0,
            ..crate::limits::LimitsConfig::default()
        },
        ..Config::default()
    };
    let policy = super::configured_policy(&config)?;
    let t = now();
    let data_dir = DataDir::open_or_create(dir, &config.region, t)?;
    std::fs::write(dir.join(MARKER), "made by healthcode demo\n")
        .map_err(|e| StartError::caused("cannot mark the demo directory", e))?;
    let store = SqliteStore::open(&DataDir::database_in(dir), OpenMode::Create)
        .map_err(|e| StartError::caused("cannot open the demo's store", e))?;
    crate::policies::publish_for_tool(&store, &policy, "made by healthcode demo").await?;
    let region = data_dir.keystore.issuer().clone();
    let seeder = Seeder {
        store: &store,
        crypto: &data_dir.crypto,
        policy: &policy,
        t,
    };
    let mut registry = DemoRecords::default();
    let data = seeder
        .seed(&region, holders, &format!("http://{listen}"), &mut registry)
        .await
        .map_err(|e| StartError::caused("seeding the demo failed", e))?;
    registry.people.extend(data.unregistered.iter().cloned());
    registry
        .write(&dir.join(REGISTRY_FILE))
        .map_err(|e| StartError::caused("cannot write the demo registry", e))?;
    store.flush_checkins()?;
    drop(store);
    let json = serde_json::to_string_pretty(&data)
        .map_err(|e| StartError::caused("cannot write the demo file", e))?;
    write_secret(&dir.join(DEMO_FILE), &json).map_err(StartError::msg)?;
    Ok((config, data))
}

/// The path of the demo file in a directory.
pub fn demo_file(dir: &Path) -> PathBuf {
    dir.join(DEMO_FILE)
}

/// The venues: a name, a category and who may enter, one of each category the policy knows.
const VENUES: [(&str, VenueCategory, AdmissionPolicy); 8] = [
    ("West Lake Mall", VenueCategory::Mall, AdmissionPolicy::GreenOnly),
    (
        "City First Hospital",
        VenueCategory::Hospital,
        AdmissionPolicy::All,
    ),
    (
        "Gongshu Community Clinic",
        VenueCategory::Clinic,
        AdmissionPolicy::All,
    ),
    (
        "Hangzhou East Station",
        VenueCategory::Transport,
        AdmissionPolicy::GreenOrYellow,
    ),
    (
        "Binjiang Office Park",
        VenueCategory::Office,
        AdmissionPolicy::GreenOnly,
    ),
    (
        "Xixi Primary School",
        VenueCategory::School,
        AdmissionPolicy::GreenOnly,
    ),
    ("Wulin Market", VenueCategory::Market, AdmissionPolicy::GreenOnly),
    (
        "Lakeside Noodles",
        VenueCategory::Restaurant,
        AdmissionPolicy::GreenOnly,
    ),
];

/// The staff accounts.
const ACCOUNTS: [(&str, Role); 4] = [
    ("admin", Role::Admin),
    ("officer-li", Role::Officer),
    ("officer-wang", Role::Officer),
    ("auditor-chen", Role::Auditor),
];

/// What seeding needs throughout.
struct Seeder<'a, S> {
    store: &'a S,
    crypto: &'a Crypto,
    policy: &'a Policy,
    /// The time the demo starts at.
    t: OffsetDateTime,
}

/// A venue and its device, as stored.
type Placed = (healthcode_domain::Venue, healthcode_store::Device);

impl<S: Store> Seeder<'_, S> {
    async fn seed(
        &self,
        region: &Issuer,
        holders: usize,
        base_url: &str,
        registry: &mut DemoRecords,
    ) -> Result<DemoData, BoxError> {
        let (devices, venues) = self.venues(region).await?;
        let accounts = self.accounts().await?;
        self.store
            .add_risk_area(&RiskArea {
                region: Issuer::parse("CN-HB")?,
                level: RiskLevel::Medium,
                from: self.t - Duration::days(10),
                until: None,
            })
            .await?;
        // The simulator's generator, so every demo looks the same.
        let mut r = Rng::new(20_200_123);
        let mut index_case: Option<ConfirmedCase> = None;
        let mut seq = 0i64;
        let mut out = Vec::with_capacity(holders);
        for i in 0..holders {
            let (holder, person) = self.holder(i, &mut r, &venues, &mut seq, &mut index_case).await?;
            out.push(holder);
            registry.people.push(person);
        }
        let mut unregistered = Vec::with_capacity(UNREGISTERED);
        for k in 0..UNREGISTERED {
            // Phones ending 1111, 2222, …: easy to type, and none a seeded holder's.
            let phone = format!("+86139{:08}", 20_000_000 + 1111 * (k + 1));
            let (_, data) = person(holders + k, &mut r, &phone, self.t)?;
            unregistered.push(demo_person(&data));
        }
        Ok(DemoData {
            base_url: base_url.into(),
            accounts,
            devices,
            holders: out,
            unregistered,
        })
    }

    /// A venue of each category, with a scanner each.
    async fn venues(&self, region: &Issuer) -> Result<(Vec<DemoDevice>, Vec<Placed>), BoxError> {
        let mut venues = Vec::new();
        let mut devices = Vec::new();
        for (name, category, admission) in VENUES {
            let v = self
                .store
                .insert_venue(&NewVenue {
                    name: name.into(),
                    category,
                    region: region.clone(),
                    admission,
                })
                .await?;
            let key = new_secret(DEVICE_KEY_PREFIX)?;
            let d = self
                .store
                .insert_device(v.id, "main entrance", &secret_hash(&key))
                .await?;
            devices.push(DemoDevice {
                device: d.id.0,
                venue: v.id.0,
                venue_name: v.name.clone(),
                category: category.as_str().into(),
                admission: admission.as_str().into(),
                key,
            });
            venues.push((v, d));
        }
        Ok((devices, venues))
    }

    /// The staff accounts, each with a one-time password.
    async fn accounts(&self) -> Result<Vec<DemoAccount>, BoxError> {
        let mut accounts = Vec::new();
        let passwords = crate::auth::PasswordHasher::default();
        for (n, (username, role)) in ACCOUNTS.into_iter().enumerate() {
            let (view, password) = {
                // Two days old, so that the demo's accounts can approve each other's proposals.
                let at = self.t - Duration::days(2);
                crate::admin::create_account(self.store, &passwords, username, role, at).await?
            };
            // A phone of the demo's own, where a reset's password goes (the console SMS adapter
            // writes it to the server's log).
            self.store
                .set_officer_phone(
                    healthcode_domain::OfficerId(view.id),
                    &format!("+86139001390{n:02}"),
                    self.t,
                )
                .await?;
            accounts.push(DemoAccount {
                username: username.into(),
                role: role.as_str().into(),
                one_time_password: password,
            });
        }
        Ok(accounts)
    }

    /// Holder number `i`: registered, a few visits, the facts that give its colour, a session.
    async fn holder(
        &self,
        i: usize,
        r: &mut Rng,
        venues: &[Placed],
        seq: &mut i64,
        index_case: &mut Option<ConfirmedCase>,
    ) -> Result<(DemoHolder, DemoPerson), BoxError> {
        let (store, t) = (self.store, self.t);
        let id = HolderId::random()?;
        let phone = format!("+86138{:08}", 10_000_000 + i);
        let (kind, data) = person(i, r, &phone, t)?;
        let hint = NameHint::mask(&data.name)?;
        let sealed =
            self.crypto
                .seal_holder(id.clone(), kind, &data, hint.as_str(), t - Duration::days(5))?;
        store.insert_holder(&sealed).await?;
        store.insert_checkins(&visits(&id, r, venues, seq, t)).await?;
        self.colour_facts(i, &id, venues, index_case).await?;
        let session = new_secret(SESSION_PREFIX)?;
        store
            .insert_session(
                &secret_hash(&session),
                &Session {
                    principal: Principal::Holder(id.clone()),
                    created_at: t,
                    expires_at: t + Duration::days(30),
                },
            )
            .await?;
        let facts = store.holder_facts(&id).await?;
        let areas = store.risk_areas().await?;
        let colour = evaluate(self.policy, &facts, &areas, t).colour;
        let holder = DemoHolder {
            phone,
            name_hint: hint.as_str().into(),
            colour: colour.as_str().into(),
            session,
        };
        Ok((holder, demo_person(&data)))
    }

    /// The colours: one in ten a confirmed case or a positive test (red), some contacts of the
    /// first case (red or yellow), some with symptoms or travel to a risk area (yellow).
    async fn colour_facts(
        &self,
        i: usize,
        id: &HolderId,
        venues: &[Placed],
        index_case: &mut Option<ConfirmedCase>,
    ) -> Result<(), BoxError> {
        let (store, t) = (self.store, self.t);
        match i % 10 {
            0 => {
                let c = store
                    .add_case(id, t - Duration::days(3), t - Duration::days(1))
                    .await?;
                index_case.get_or_insert(c);
            }
            1 => {
                let test = TestResult {
                    positive: true,
                    sampled_at: t - Duration::days(2),
                    lab: "Zhejiang CDC".into(),
                };
                store.add_fact(id, &Fact::Test(test)).await?;
            }
            2 | 3 => {
                if let Some(case) = index_case {
                    let (v, _) = &venues[0];
                    let from = t - Duration::days(2);
                    let grade = if i % 10 == 2 {
                        ExposureGrade::Close
                    } else {
                        ExposureGrade::SamePlace
                    };
                    let exposure = Exposure {
                        case: case.id,
                        venue: v.id,
                        case_interval: (from, from + Duration::hours(1)),
                        contact_interval: (from + Duration::minutes(10), from + Duration::minutes(50)),
                        overlap_minutes: 40,
                        grade,
                    };
                    store.add_exposures(&[(id.clone(), exposure)]).await?;
                }
            }
            4 => {
                let declaration = HealthDeclaration {
                    at: t - Duration::hours(20),
                    symptoms: vec![Symptom::Fever, Symptom::Cough],
                    temperature_c: Some(38.2),
                };
                store.add_fact(id, &Fact::Health(declaration)).await?;
            }
            5 => {
                let travel = TravelDeclaration {
                    at: t - Duration::days(1),
                    region: Issuer::parse("CN-HB")?,
                    from: (t - Duration::days(4)).date(),
                    until: (t - Duration::days(2)).date(),
                };
                store.add_fact(id, &Fact::Travel(travel)).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A person as the demo registry records them.
fn demo_person(data: &PersonalData) -> DemoPerson {
    let document = match (&data.resident_id, &data.passport, &data.nationality) {
        (Some(number), _, _) => DocumentJson::ResidentId {
            number: number.clone(),
        },
        (None, Some(number), Some(nationality)) => DocumentJson::Passport {
            number: number.clone(),
            nationality: nationality.clone(),
        },
        _ => DocumentJson::ResidentId {
            number: String::new(),
        },
    };
    DemoPerson {
        name: data.name.clone(),
        document,
        phone: data.phone.clone(),
    }
}

/// Holder number `i`'s identity: every seventh a visitor with a passport, the rest residents.
fn person(
    i: usize,
    r: &mut Rng,
    phone: &str,
    t: OffsetDateTime,
) -> Result<(HolderKind, PersonalData), BoxError> {
    if i % 7 == 6 {
        let (name, nat) = VISITORS[i % VISITORS.len()];
        let data = PersonalData {
            name: name.into(),
            resident_id: None,
            passport: Some(format!("P{:07}", 1_000_000 + i)),
            nationality: Some(nat.into()),
            birth_date: time::Date::from_calendar_date(1970 + (i % 30) as i32, time::Month::May, 9)?,
            phone: phone.to_owned(),
            arrival: Some(("SK997".into(), (t - Duration::days(3)).date())),
        };
        return Ok((HolderKind::Visitor, data));
    }
    let name = format!(
        "{}{}",
        SURNAMES[r.below(SURNAMES.len() as u64) as usize],
        GIVEN[r.below(GIVEN.len() as u64) as usize]
    );
    let rid = synthetic_resident_id("330106", i as u64);
    let birth = time::Date::parse(
        &format!("{}-{}-{}", &rid[6..10], &rid[10..12], &rid[12..14]),
        &time::macros::format_description!("[year]-[month]-[day]"),
    )?;
    let data = PersonalData {
        name,
        resident_id: Some(rid),
        passport: None,
        nationality: None,
        birth_date: birth,
        phone: phone.to_owned(),
        arrival: None,
    };
    Ok((HolderKind::Resident, data))
}

/// Two to four visits over the last few days, at random venues.
fn visits(id: &HolderId, r: &mut Rng, venues: &[Placed], seq: &mut i64, t: OffsetDateTime) -> Vec<CheckIn> {
    let mut checkins = Vec::new();
    for k in 0..(2 + r.below(3)) {
        let (v, d) = &venues[r.below(venues.len() as u64) as usize];
        *seq += 1;
        let at = t - Duration::hours(6 + 20 * k as i64 + r.below(10) as i64);
        checkins.push(CheckIn {
            holder: id.clone(),
            venue: v.id,
            device: d.id,
            seq: *seq,
            at,
            out: Some(at + Duration::minutes(30 + r.below(60) as i64)),
        });
    }
    checkins
}
