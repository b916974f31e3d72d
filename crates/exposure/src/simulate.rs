//! A synthetic city for tests and benchmarks: holders (residents and visitors), venues of every
//! category with heavy-tailed popularity capped by category, days of check-ins with daily
//! rhythms and dwell times, and seeded cases. The same seed gives the same city.

use healthcode_domain::{
    AdmissionPolicy, CaseId, CheckIn, DeviceId, HolderId, Issuer, Venue, VenueCategory, VenueId,
    resident_id_check_char,
};
use healthcode_store::{Crypto, HolderKind, NewVenue, PersonalData, SealedHolder, Store, StoreError};
use time::{Duration, OffsetDateTime};

/// What to make.
#[derive(Debug, Clone)]
pub struct CityParams {
    /// Holders.
    pub holders: u64,
    /// Venues.
    pub venues: u64,
    /// Days of check-ins, ending at `end`.
    pub days: u32,
    /// Check-ins per holder per day.
    pub per_day: u32,
    /// Confirmed cases to seed (onsets in the last days).
    pub cases: u32,
    /// The seed.
    pub seed: u64,
    /// The end of the simulated period (check-ins lie in the `days` before it).
    pub end: OffsetDateTime,
    /// Region of the venues.
    pub region: Issuer,
    /// Also write `venues.csv`, `checkins.csv` and `cases.csv` here (for comparing engines).
    pub csv_dir: Option<std::path::PathBuf>,
}

/// One of the comparison files could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
struct CsvError {
    path: std::path::PathBuf,
    #[source]
    source: std::io::Error,
}

struct Csv(Option<(std::io::BufWriter<std::fs::File>, std::path::PathBuf)>);

impl Csv {
    fn create(dir: &Option<std::path::PathBuf>, name: &str, header: &str) -> Result<Csv, StoreError> {
        let Some(dir) = dir else { return Ok(Csv(None)) };
        let path = dir.join(name);
        let io = |source| {
            StoreError::backend(CsvError {
                path: path.clone(),
                source,
            })
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
        std::io::Write::write_all(&mut w, header.as_bytes()).map_err(io)?;
        Ok(Csv(Some((w, path))))
    }

    fn line(&mut self, text: std::fmt::Arguments<'_>) -> Result<(), StoreError> {
        if let Some((w, path)) = &mut self.0 {
            std::io::Write::write_fmt(w, text).map_err(|source| {
                StoreError::backend(CsvError {
                    path: path.clone(),
                    source,
                })
            })?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        if let Some((w, path)) = &mut self.0 {
            std::io::Write::flush(w).map_err(|source| {
                StoreError::backend(CsvError {
                    path: path.clone(),
                    source,
                })
            })?;
        }
        Ok(())
    }
}

/// What was made.
#[derive(Debug, Clone, Default)]
pub struct CityReport {
    /// Holders stored.
    pub holders: u64,
    /// Venues stored.
    pub venues: u64,
    /// Check-ins stored.
    pub checkins: u64,
    /// Seeded cases.
    pub cases: Vec<CaseId>,
    /// Expected visits a day at the busiest venue, and its category.
    pub busiest: (f64, Option<VenueCategory>),
}

/// Check-ins handed to the store at once.
const LOAD_CHUNK: usize = 100_000;

/// Progress of a long step: (step name, done, total).
pub type Progress<'a> = &'a (dyn Fn(&str, u64, u64) + Sync);

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The share of venues of each category, and the most visits a day one venue of it sees.
const CATEGORIES: [(VenueCategory, f64, f64); 9] = [
    (VenueCategory::Mall, 0.02, 40_000.0),
    (VenueCategory::Hospital, 0.01, 12_000.0),
    (VenueCategory::Clinic, 0.05, 600.0),
    (VenueCategory::Transport, 0.03, 60_000.0),
    (VenueCategory::Office, 0.20, 4_000.0),
    (VenueCategory::School, 0.05, 2_000.0),
    (VenueCategory::Market, 0.10, 8_000.0),
    (VenueCategory::Restaurant, 0.34, 1_500.0),
    (VenueCategory::Other, 0.20, 1_000.0),
];

fn category_at(r: f64) -> (VenueCategory, f64) {
    let mut acc = 0.0;
    for (c, share, cap) in CATEGORIES {
        acc += share;
        if r < acc {
            return (c, cap);
        }
    }
    (VenueCategory::Other, 1_000.0)
}

/// Hour of arrival by category: a few peaks over a day (local time is not modelled; UTC hours).
fn arrival_minute(rng: &mut Rng, c: VenueCategory) -> i64 {
    let (centre, spread): (f64, f64) = match c {
        VenueCategory::Office | VenueCategory::School => (8.5, 1.0),
        VenueCategory::Transport => {
            if rng.unit() < 0.5 {
                (8.0, 1.2)
            } else {
                (18.0, 1.5)
            }
        }
        VenueCategory::Restaurant => {
            if rng.unit() < 0.5 {
                (12.0, 1.0)
            } else {
                (18.5, 1.2)
            }
        }
        VenueCategory::Market => (9.5, 2.0),
        _ => (15.0, 3.5),
    };
    // The sum of three uniforms: a cheap bell.
    let bell = (rng.unit() + rng.unit() + rng.unit() - 1.5) * 2.0;
    let h = (centre + bell * spread).clamp(0.0, 23.98);
    (h * 60.0) as i64
}

/// Expected daily visits per venue: Zipf-like weights over a random order, capped by category
/// and by share of the city, the excess spread over the rest until nothing exceeds its cap.
fn popularity(rng: &mut Rng, cats: &[(VenueCategory, f64)], total_daily: f64) -> Vec<f64> {
    let n = cats.len();
    // No venue takes a sizeable share of the city: at most 1% of all visits (or twice its fair
    // share, in a city of few venues), and never more than its category's cap.
    let share_cap = total_daily * (0.01f64).max(2.0 / n.max(1) as f64);
    let cats: Vec<(VenueCategory, f64)> = cats.iter().map(|(c, cap)| (*c, cap.min(share_cap))).collect();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut w = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        w[i] = 1.0 / ((rank + 1) as f64).powf(0.9);
    }
    let mut capped = vec![false; n];
    for _ in 0..50 {
        let free: f64 = (0..n).filter(|i| !capped[*i]).map(|i| w[i]).sum();
        let fixed: f64 = (0..n).filter(|i| capped[*i]).map(|i| cats[i].1).sum();
        let left = (total_daily - fixed).max(0.0);
        let mut changed = false;
        for i in 0..n {
            if !capped[i] && free > 0.0 && w[i] / free * left > cats[i].1 {
                capped[i] = true;
                changed = true;
            }
        }
        if !changed {
            return (0..n)
                .map(|i| if capped[i] { cats[i].1 } else { w[i] / free * left })
                .collect();
        }
    }
    (0..n).map(|i| cats[i].1.min(w[i])).collect()
}

/// The `i`-th simulated holder's id: four bytes from the seed and `i`, then `i` itself (unique
/// for four billion holders), so reruns with a seed agree.
pub fn holder_id(seed: u64, i: u64) -> HolderId {
    let mut r = Rng::new(seed ^ i.wrapping_mul(0x1000_0000_01B3));
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&r.next_u64().to_be_bytes()[..4]);
    b[4..].copy_from_slice(&(i as u32).to_be_bytes());
    match HolderId::from_bytes(&b) {
        Ok(h) => h,
        Err(_) => unreachable!("eight bytes are a valid holder id"),
    }
}

/// The `i`-th synthetic resident ID number of a six-digit region code: valid (real date, right
/// check character) and unique for up to 20 million `i` (the birth date walks 20,000 days by a
/// step coprime to it; the sequence number is `i` mod 1000).
pub fn synthetic_resident_id(region: &str, i: u64) -> String {
    let day = ((i / 1000) * 7919 + 4000) % 20_000;
    let birth = time::Date::from_calendar_date(1950, time::Month::January, 1)
        .map(|d| d + Duration::days(day as i64))
        .unwrap_or(time::Date::MIN);
    let seventeen = format!(
        "{region}{:04}{:02}{:02}{:03}",
        birth.year(),
        u8::from(birth.month()),
        birth.day(),
        i % 1000
    );
    let mut digits = [0u8; 17];
    for (d, c) in digits.iter_mut().zip(seventeen.bytes()) {
        *d = c;
    }
    format!("{seventeen}{}", resident_id_check_char(&digits))
}

/// Builds the city into `store`.
pub async fn simulate<S: Store>(
    store: &S,
    crypto: &Crypto,
    p: &CityParams,
    progress: Progress<'_>,
) -> Result<CityReport, StoreError> {
    let mut rng = Rng::new(p.seed);
    let mut report = CityReport::default();
    let (venues, cats) = make_venues(store, p, &mut rng, progress).await?;
    report.venues = venues.len() as u64;
    let total_daily = (p.holders * u64::from(p.per_day)) as f64;
    let pop = popularity(&mut rng, &cats, total_daily);
    if let Some((i, v)) = pop.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
        report.busiest = (*v, Some(cats[i].0));
    }
    report.holders = make_holders(store, crypto, p, progress).await?;
    let places: Vec<(VenueId, VenueCategory)> = venues.iter().map(|v| (v.id, v.category)).collect();
    let (checkins, rng) = make_checkins(store, p, rng, places, &pop, progress).await?;
    report.checkins = checkins;
    report.cases = make_cases(store, p, rng).await?;
    Ok(report)
}

/// The venues, by the categories' shares; hospitals and clinics admit everyone, the rest green
/// only. Returns them with each one's category and weight.
async fn make_venues<S: Store>(
    store: &S,
    p: &CityParams,
    rng: &mut Rng,
    progress: Progress<'_>,
) -> Result<(Vec<Venue>, Vec<(VenueCategory, f64)>), StoreError> {
    let cats: Vec<(VenueCategory, f64)> = (0..p.venues).map(|_| category_at(rng.unit())).collect();
    let new: Vec<NewVenue> = cats
        .iter()
        .enumerate()
        .map(|(i, (c, _))| NewVenue {
            name: format!("{} {}", c.as_str(), i + 1),
            category: *c,
            region: p.region.clone(),
            admission: if matches!(c, VenueCategory::Hospital | VenueCategory::Clinic) {
                AdmissionPolicy::All
            } else {
                AdmissionPolicy::GreenOnly
            },
        })
        .collect();
    let mut venues = Vec::with_capacity(new.len());
    for chunk in new.chunks(10_000) {
        venues.extend(store.insert_venues(chunk).await?);
        progress("venues", venues.len() as u64, p.venues);
    }
    let mut venues_csv = Csv::create(&p.csv_dir, "venues.csv", "venue,category\n")?;
    for v in &venues {
        venues_csv.line(format_args!("{},{}\n", v.id.0, v.category.as_str()))?;
    }
    venues_csv.finish()?;
    Ok((venues, cats))
}

/// The holders, sealed as registration would seal them (every 25th a visitor); returns how many
/// were stored.
async fn make_holders<S: Store>(
    store: &S,
    crypto: &Crypto,
    p: &CityParams,
    progress: Progress<'_>,
) -> Result<u64, StoreError> {
    let created = p.end - Duration::days(p.days.into()) - Duration::days(30);
    let mut stored = 0;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..p.holders {
        let visitor = i % 25 == 24;
        let phone = format!("+86139{:08}", i % 100_000_000);
        let data = PersonalData {
            name: format!("Holder {i}"),
            resident_id: (!visitor).then(|| synthetic_resident_id("440106", i)),
            passport: visitor.then(|| format!("S{:08}", i)),
            nationality: visitor.then(|| "GBR".to_owned()),
            birth_date: time::Date::from_calendar_date(1980, time::Month::June, 1).unwrap_or(time::Date::MIN),
            phone,
            arrival: visitor.then(|| ("BA39".to_owned(), created.date())),
        };
        let kind = if visitor {
            HolderKind::Visitor
        } else {
            HolderKind::Resident
        };
        let sealed: SealedHolder = crypto
            .seal_holder(holder_id(p.seed, i), kind, &data, "H*** N.", created)
            .map_err(StoreError::backend)?;
        batch.push(sealed);
        if batch.len() == 10_000 || i + 1 == p.holders {
            stored += store.insert_holders(&batch).await?;
            batch.clear();
            progress("holders", i + 1, p.holders);
        }
    }
    Ok(stored)
}

/// Check-ins, day by day, holder by holder, at venues drawn by popularity (`pop`); one scanner
/// device a venue (its number is the venue's). Made on a thread of their own while the store takes
/// the previous ones; each day sorted by time, so that a bulk load fills each hour's storage in
/// few large pieces. Returns how many the store took, and the generator for what follows.
async fn make_checkins<S: Store>(
    store: &S,
    p: &CityParams,
    rng: Rng,
    places: Vec<(VenueId, VenueCategory)>,
    pop: &[f64],
    progress: Progress<'_>,
) -> Result<(u64, Rng), StoreError> {
    // Cumulative weights for sampling a venue.
    let mut cumulative = Vec::with_capacity(pop.len());
    let mut acc = 0.0;
    for w in pop {
        acc += w;
        cumulative.push(acc);
    }
    let checkins_csv = Csv::create(&p.csv_dir, "checkins.csv", "holder,venue,at,out\n")?;
    let total = p.holders * u64::from(p.per_day) * u64::from(p.days);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<CheckIn>>(4);
    let day = DayMaker {
        holders: p.holders,
        per_day: p.per_day,
        seed: p.seed,
        places,
        cumulative,
        acc,
    };
    let (days, start_day) = (p.days, p.end - Duration::days(p.days.into()));
    let maker = std::thread::spawn(move || day.run(rng, checkins_csv, days, start_day, &tx));
    let mut taken = 0;
    let mut done = 0u64;
    while let Some(chunk) = rx.recv().await {
        taken += store.load_checkins(&chunk).await?;
        done += chunk.len() as u64;
        progress("check-ins", done, total);
    }
    let (rng, made) = maker
        .join()
        .map_err(|_| StoreError::backend("the check-in generator failed"))?;
    made?;
    Ok((taken, rng))
}

/// What the check-in thread needs to make each day.
struct DayMaker {
    holders: u64,
    per_day: u32,
    seed: u64,
    places: Vec<(VenueId, VenueCategory)>,
    cumulative: Vec<f64>,
    acc: f64,
}

impl DayMaker {
    /// Makes every day's check-ins and sends them in chunks; returns the generator and whether
    /// the CSV could be written.
    fn run(
        &self,
        mut rng: Rng,
        mut csv: Csv,
        days: u32,
        start_day: OffsetDateTime,
        tx: &tokio::sync::mpsc::Sender<Vec<CheckIn>>,
    ) -> (Rng, Result<(), StoreError>) {
        let mut seq: i64 = 0;
        for day in 0..days {
            let midnight = start_day + Duration::days(day.into());
            let rows = match self.day(&mut rng, &mut csv, midnight, &mut seq) {
                Ok(rows) => rows,
                Err(e) => return (rng, Err(e)),
            };
            let mut rows = rows.into_iter();
            loop {
                let chunk: Vec<CheckIn> = rows.by_ref().take(LOAD_CHUNK).collect();
                // A closed channel: the store failed, and the loader reports why.
                if chunk.is_empty() || tx.blocking_send(chunk).is_err() {
                    break;
                }
            }
        }
        let done = csv.finish();
        (rng, done)
    }

    /// One day's check-ins, sorted by time.
    fn day(
        &self,
        rng: &mut Rng,
        csv: &mut Csv,
        midnight: OffsetDateTime,
        seq: &mut i64,
    ) -> Result<Vec<CheckIn>, StoreError> {
        let mut rows = Vec::with_capacity((self.holders * u64::from(self.per_day)) as usize);
        for i in 0..self.holders {
            let holder = holder_id(self.seed, i);
            for _ in 0..self.per_day {
                let x = rng.unit() * self.acc;
                let v = self
                    .cumulative
                    .partition_point(|c| *c < x)
                    .min(self.places.len().saturating_sub(1));
                let (venue, category) = self.places[v];
                let at = midnight + Duration::minutes(arrival_minute(rng, category));
                let out = (rng.below(5) == 0).then(|| {
                    let dwell = 15 + rng.below(120) as i64;
                    at + Duration::minutes(dwell)
                });
                *seq += 1;
                csv.line(format_args!(
                    "{},{},{},{}\n",
                    holder.to_hex(),
                    venue.0,
                    at.unix_timestamp(),
                    out.map(|o| o.unix_timestamp().to_string()).unwrap_or_default()
                ))?;
                rows.push(CheckIn {
                    holder: holder.clone(),
                    venue,
                    device: DeviceId(venue.0),
                    seq: *seq,
                    at,
                    out,
                });
            }
        }
        rows.sort_by_key(|c| c.at);
        Ok(rows)
    }
}

/// Cases: random holders, onsets in the last five days, confirmed a day or two later (but never
/// after the end).
async fn make_cases<S: Store>(store: &S, p: &CityParams, mut rng: Rng) -> Result<Vec<CaseId>, StoreError> {
    let mut cases_csv = Csv::create(&p.csv_dir, "cases.csv", "case_id,holder,onset,confirmed\n")?;
    let mut cases = Vec::with_capacity(p.cases as usize);
    for _ in 0..p.cases {
        let i = rng.below(p.holders);
        let onset = p.end - Duration::hours(24 + rng.below(96) as i64);
        let confirmed = (onset + Duration::hours(24 + rng.below(24) as i64)).min(p.end);
        let holder = holder_id(p.seed, i);
        let c = store.add_case(&holder, onset, confirmed).await?;
        cases_csv.line(format_args!(
            "{},{},{},{}\n",
            c.id.0,
            holder.to_hex(),
            onset.unix_timestamp(),
            confirmed.unix_timestamp()
        ))?;
        cases.push(c.id);
    }
    cases_csv.finish()?;
    Ok(cases)
}
