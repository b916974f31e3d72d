//! `healthcode demo`: a fresh data directory filled with a small region (venues of several
//! categories with a scanner each, staff accounts with one-time passwords, holders in all three
//! colours with reasons and a few days of check-ins), served with the console SMS adapter.
//!
//! Besides what it prints, it writes `demo.json` in the directory (mode 0600): the device keys and
//! a session token for every holder, which `healthcode loadgen` reads.

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
use crate::sms::{SmsConfig, SmsKind};
use crate::{StartError, now};

/// The file that marks a directory as made by `demo` (so a later `demo` may replace it).
pub const MARKER: &str = ".healthcode-demo";
/// What `demo` leaves for `loadgen`.
pub const DEMO_FILE: &str = "demo.json";

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
    let other = |e: String| StartError::Other(e);
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            return Err(other(format!(
                "{} exists and was not made by `healthcode demo`; choose another --dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir)
            .map_err(|e| other(format!("cannot remove the old demo {}: {e}", dir.display())))?;
    }
    let config = Config {
        listen,
        data_dir: dir.to_owned(),
        sms: SmsConfig {
            kind: SmsKind::Console,
            url: None,
        },
        policy_file: policy_file.map(Path::to_owned),
        ..Config::default()
    };
    let policy = crate::configured_policy(&config)?;
    let t = now();
    let data_dir = DataDir::open_or_create(dir, &config.region, t)?;
    std::fs::write(dir.join(MARKER), "made by healthcode demo\n").map_err(|e| other(e.to_string()))?;
    let store =
        SqliteStore::open(&DataDir::database_in(dir), OpenMode::Create).map_err(|e| other(e.to_string()))?;
    let region = data_dir.keystore.issuer().clone();
    let data = seed(
        &store,
        &data_dir.crypto,
        &region,
        &policy,
        holders,
        t,
        &format!("http://{listen}"),
    )
    .await
    .map_err(|e| other(format!("seeding the demo failed: {e}")))?;
    store.flush_checkins().map_err(|e| other(e.to_string()))?;
    drop(store);
    let json = serde_json::to_string_pretty(&data).map_err(|e| other(e.to_string()))?;
    write_secret(&dir.join(DEMO_FILE), &json).map_err(other)?;
    Ok((config, data))
}

/// The path of the demo file in a directory.
pub fn demo_file(dir: &Path) -> PathBuf {
    dir.join(DEMO_FILE)
}

async fn seed<S: Store>(
    store: &S,
    crypto: &Crypto,
    region: &Issuer,
    policy: &Policy,
    holders: usize,
    t: OffsetDateTime,
    base_url: &str,
) -> Result<DemoData, String> {
    let e = |e: healthcode_store::StoreError| e.to_string();
    // The simulator's generator, so every demo looks the same.
    let mut r = Rng::new(20_200_123);
    let venue_specs = [
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
    let mut venues = Vec::new();
    let mut devices = Vec::new();
    for (name, category, admission) in venue_specs {
        let v = store
            .insert_venue(&NewVenue {
                name: name.into(),
                category,
                region: region.clone(),
                admission,
            })
            .await
            .map_err(e)?;
        let key = new_secret(DEVICE_KEY_PREFIX).map_err(|e| e.to_string())?;
        let d = store
            .insert_device(v.id, "main entrance", &secret_hash(&key))
            .await
            .map_err(e)?;
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
    let mut accounts = Vec::new();
    for (username, role) in [
        ("admin", Role::Admin),
        ("officer-li", Role::Officer),
        ("officer-wang", Role::Officer),
        ("auditor-chen", Role::Auditor),
    ] {
        let (_, password) = crate::admin::create_account(store, username, role)
            .await
            .map_err(|e| e.to_string())?;
        accounts.push(DemoAccount {
            username: username.into(),
            role: role.as_str().into(),
            one_time_password: password,
        });
    }
    store
        .add_risk_area(&RiskArea {
            region: Issuer::parse("CN-HB").map_err(|e| e.to_string())?,
            level: RiskLevel::Medium,
            from: t - Duration::days(10),
            until: None,
        })
        .await
        .map_err(e)?;
    let mut index_case: Option<ConfirmedCase> = None;
    let mut out = Vec::new();
    let mut seq = 0i64;
    for i in 0..holders {
        let id = HolderId::random().map_err(|e| e.to_string())?;
        let phone = format!("+86138{:08}", 10_000_000 + i);
        let (kind, data) = if i % 7 == 6 {
            let (name, nat) = VISITORS[i % VISITORS.len()];
            (
                HolderKind::Visitor,
                PersonalData {
                    name: name.into(),
                    resident_id: None,
                    passport: Some(format!("P{:07}", 1_000_000 + i)),
                    nationality: Some(nat.into()),
                    birth_date: time::Date::from_calendar_date(1970 + (i % 30) as i32, time::Month::May, 9)
                        .map_err(|e| e.to_string())?,
                    phone: phone.clone(),
                    arrival: Some(("SK997".into(), (t - Duration::days(3)).date())),
                },
            )
        } else {
            let name = format!(
                "{}{}",
                SURNAMES[r.below(SURNAMES.len() as u64) as usize],
                GIVEN[r.below(GIVEN.len() as u64) as usize]
            );
            let rid = synthetic_resident_id("330106", i as u64);
            let birth = time::Date::parse(
                &format!("{}-{}-{}", &rid[6..10], &rid[10..12], &rid[12..14]),
                &time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|e| e.to_string())?;
            (
                HolderKind::Resident,
                PersonalData {
                    name,
                    resident_id: Some(rid),
                    passport: None,
                    nationality: None,
                    birth_date: birth,
                    phone: phone.clone(),
                    arrival: None,
                },
            )
        };
        let hint = NameHint::mask(&data.name).map_err(|e| e.to_string())?;
        let sealed = crypto
            .seal_holder(id.clone(), kind, &data, hint.as_str(), t - Duration::days(5))
            .map_err(|e| e.to_string())?;
        store.insert_holder(&sealed).await.map_err(e)?;
        // A few days of visits.
        let mut checkins = Vec::new();
        for k in 0..(2 + r.below(3)) {
            let (v, d) = &venues[r.below(venues.len() as u64) as usize];
            seq += 1;
            let at = t - Duration::hours(6 + 20 * k as i64 + r.below(10) as i64);
            checkins.push(CheckIn {
                holder: id.clone(),
                venue: v.id,
                device: d.id,
                seq,
                at,
                out: Some(at + Duration::minutes(30 + r.below(60) as i64)),
            });
        }
        store.insert_checkins(&checkins).await.map_err(e)?;
        // The colours: one in ten a confirmed case or a positive test (red), some contacts of the
        // first case (red or yellow), some with symptoms or travel to a risk area (yellow).
        match i % 10 {
            0 => {
                let c = store
                    .add_case(&id, t - Duration::days(3), t - Duration::days(1))
                    .await
                    .map_err(e)?;
                if index_case.is_none() {
                    index_case = Some(c);
                }
            }
            1 => store
                .add_fact(
                    &id,
                    &Fact::Test(TestResult {
                        positive: true,
                        sampled_at: t - Duration::days(2),
                        lab: "Zhejiang CDC".into(),
                    }),
                )
                .await
                .map_err(e)?,
            2 | 3 => {
                if let Some(case) = &index_case {
                    let (v, _) = &venues[0];
                    let from = t - Duration::days(2);
                    let grade = if i % 10 == 2 {
                        ExposureGrade::Close
                    } else {
                        ExposureGrade::SamePlace
                    };
                    store
                        .add_exposures(&[(
                            id.clone(),
                            Exposure {
                                case: case.id,
                                venue: v.id,
                                case_interval: (from, from + Duration::hours(1)),
                                contact_interval: (
                                    from + Duration::minutes(10),
                                    from + Duration::minutes(50),
                                ),
                                overlap_minutes: 40,
                                grade,
                            },
                        )])
                        .await
                        .map_err(e)?;
                }
            }
            4 => store
                .add_fact(
                    &id,
                    &Fact::Health(HealthDeclaration {
                        at: t - Duration::hours(20),
                        symptoms: vec![Symptom::Fever, Symptom::Cough],
                        temperature_c: Some(38.2),
                    }),
                )
                .await
                .map_err(e)?,
            5 => store
                .add_fact(
                    &id,
                    &Fact::Travel(TravelDeclaration {
                        at: t - Duration::days(1),
                        region: Issuer::parse("CN-HB").map_err(|e| e.to_string())?,
                        from: (t - Duration::days(4)).date(),
                        until: (t - Duration::days(2)).date(),
                    }),
                )
                .await
                .map_err(e)?,
            _ => {}
        }
        let session = new_secret(SESSION_PREFIX).map_err(|e| e.to_string())?;
        store
            .insert_session(
                &secret_hash(&session),
                &Session {
                    principal: Principal::Holder(id.clone()),
                    created_at: t,
                    expires_at: t + Duration::days(30),
                },
            )
            .await
            .map_err(e)?;
        let facts = store.holder_facts(&id).await.map_err(e)?;
        let areas = store.risk_areas().await.map_err(e)?;
        let colour = evaluate(policy, &facts, &areas, t).colour;
        out.push(DemoHolder {
            phone,
            name_hint: hint.as_str().into(),
            colour: colour.as_str().into(),
            session,
        });
    }
    Ok(DemoData {
        base_url: base_url.into(),
        accounts,
        devices,
        holders: out,
    })
}
