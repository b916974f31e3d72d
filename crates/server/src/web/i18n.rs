//! The pages' strings in Simplified Chinese and English, from `locales/*.toml` (compiled in).
//! English is complete and the fallback: a string missing in Chinese is shown in English, and a
//! key missing in both is shown as itself (and a test fails).

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// A language the pages speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// The short code used in links and the cookie.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The `lang` attribute of the page.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The language's own name, for the switch.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "简体中文",
        }
    }

    /// The other one.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// `en` or `zh`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The first of the browser's languages the pages speak; English when none.
    pub fn from_accept_language(header: &str) -> Lang {
        header
            .split(',')
            .map(|part| part.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .find_map(|tag| {
                if tag.starts_with("zh") {
                    Some(Lang::Zh)
                } else if tag.starts_with("en") {
                    Some(Lang::En)
                } else {
                    None
                }
            })
            .unwrap_or(Lang::En)
    }
}

type Catalog = BTreeMap<String, String>;

fn load(source: &str) -> Catalog {
    fn walk(prefix: &str, v: &toml::Value, out: &mut Catalog) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            toml::Value::String(s) => {
                out.insert(prefix.to_owned(), s.clone());
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = Catalog::new();
    // The catalogs are compiled in and checked by tests; a broken one shows keys, not a crash.
    if let Ok(v) = source.parse::<toml::Table>() {
        walk("", &toml::Value::Table(v), &mut out);
    }
    out
}

static EN: LazyLock<Catalog> = LazyLock::new(|| load(include_str!("../../locales/en.toml")));
static ZH: LazyLock<Catalog> = LazyLock::new(|| load(include_str!("../../locales/zh.toml")));

fn catalog(lang: Lang) -> &'static Catalog {
    match lang {
        Lang::En => &EN,
        Lang::Zh => &ZH,
    }
}

/// The string `key` in `lang`, else in English, else the key itself.
pub fn text(lang: Lang, key: &str) -> &'static str {
    if let Some(s) = catalog(lang).get(key) {
        return s.as_str();
    }
    if let Some(s) = EN.get(key) {
        return s.as_str();
    }
    // Not in any catalog: show the key (leaked once per distinct key, which is bounded by the
    // templates' fixed set of keys).
    static MISSING: LazyLock<std::sync::Mutex<BTreeMap<String, &'static str>>> =
        LazyLock::new(Default::default);
    let Ok(mut m) = MISSING.lock() else {
        return "?";
    };
    m.entry(key.to_owned())
        .or_insert_with(|| Box::leak(key.to_owned().into_boxed_str()))
}

/// The string `key` in `lang` only (no fallback).
pub fn translation(lang: Lang, key: &str) -> Option<&'static str> {
    catalog(lang).get(key).map(String::as_str)
}

/// The strings under `js.` in `lang` (English where missing), as a JSON object keyed without
/// the prefix; made once per language.
pub fn script_strings(lang: Lang) -> &'static str {
    fn make(lang: Lang) -> String {
        let mut out = serde_json::Map::new();
        for (k, v) in EN.range("js.".to_owned()..) {
            let Some(short) = k.strip_prefix("js.") else {
                break;
            };
            let s = catalog(lang).get(k).unwrap_or(v);
            out.insert(short.to_owned(), serde_json::Value::String(s.clone()));
        }
        serde_json::Value::Object(out).to_string()
    }
    static EN_JS: LazyLock<String> = LazyLock::new(|| make(Lang::En));
    static ZH_JS: LazyLock<String> = LazyLock::new(|| make(Lang::Zh));
    match lang {
        Lang::En => &EN_JS,
        Lang::Zh => &ZH_JS,
    }
}

/// Every key of a language's catalog (for tests).
pub fn keys(lang: Lang) -> Vec<&'static str> {
    catalog(lang).keys().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn catalogs_parse_and_chinese_adds_no_key_english_lacks() {
        include_str!("../../locales/en.toml")
            .parse::<toml::Table>()
            .expect("en.toml parses");
        include_str!("../../locales/zh.toml")
            .parse::<toml::Table>()
            .expect("zh.toml parses");
        let en = keys(Lang::En);
        assert!(en.len() > 100, "English has {} strings", en.len());
        // Rule translations exist only in the languages the policy is not written in.
        let extra: Vec<_> = keys(Lang::Zh)
            .into_iter()
            .filter(|k| !en.contains(k) && !k.starts_with("rule."))
            .collect();
        assert!(extra.is_empty(), "keys only in Chinese: {extra:?}");
    }

    #[test]
    fn chinese_falls_back_to_english() {
        // A key only English has is shown in English on a Chinese page.
        assert!(translation(Lang::Zh, "rule.default-2026.1.same-place").is_some());
        assert!(translation(Lang::Zh, "rule.another-version.same-place").is_none());
        let en_only: Vec<_> = keys(Lang::En)
            .into_iter()
            .filter(|k| !keys(Lang::Zh).contains(k))
            .collect();
        for k in en_only {
            assert_eq!(text(Lang::Zh, k), text(Lang::En, k));
        }
        assert_eq!(text(Lang::Zh, "colour.red"), "红码");
        assert_eq!(text(Lang::En, "colour.red"), "Red");
        assert_eq!(text(Lang::Zh, "no.such.key"), "no.such.key");
    }

    #[test]
    fn browser_languages() {
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en-GB,en;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR, zh-TW;q=0.5"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("fr-FR"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }

    #[test]
    fn script_strings_fall_back_too() {
        let zh: serde_json::Value = serde_json::from_str(script_strings(Lang::Zh)).unwrap();
        let en: serde_json::Value = serde_json::from_str(script_strings(Lang::En)).unwrap();
        assert_eq!(zh.as_object().unwrap().len(), en.as_object().unwrap().len());
        assert!(en.as_object().unwrap().len() > 10);
    }
}
