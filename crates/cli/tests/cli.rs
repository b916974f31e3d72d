//! The `healthcode` command as a newcomer uses it: the README's walk-through, and one clear line
//! with a non-zero exit for every kind of bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn healthcode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_healthcode"))
        .args(args)
        .env_remove("HEALTHCODE_TRUST_ROOT")
        .env_remove("HEALTHCODE_KEY_DIR")
        .env_remove("HEALTHCODE_SIGNING_KEY")
        .env_remove("HEALTHCODE_SIGNING_KEY_FILE")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = healthcode(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// A failure: the exit code, and exactly one line of output in all, naming the problem.
fn fails(args: &[&str], code: i32) -> String {
    let o = healthcode(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}: {}{}",
        stdout(&o),
        stderr(&o)
    );
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        all.trim_end().lines().count(),
        1,
        "{args:?} printed more than one line:\n{all}"
    );
    assert!(
        !all.contains("panicked") && !all.contains("RUST_BACKTRACE"),
        "{all}"
    );
    all.trim_end().to_owned()
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: String,
    list: String,
    root: String,
    base: std::path::PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_owned();
    let dir = base.join("keys").display().to_string();
    let list = base.join("trust-list.txt").display().to_string();
    ok(&["keys", "generate", "--dir", &dir, "--issuer", "CN-ZJ"]);
    ok(&["trust-list", "export", "--dir", &dir, "--out", &list]);
    let root = Path::new(&dir).join("root.pub").display().to_string();
    Setup {
        _tmp: tmp,
        dir,
        list,
        root,
        base,
    }
}

#[test]
fn readme_walk_through_issue_render_verify_a_png() {
    let s = setup();
    let out = ok(&["trust-list", "verify", &s.list, "--root", &s.root]);
    assert!(out.starts_with("VALID trust list"), "{out}");
    let code = ok(&[
        "code",
        "issue",
        "--dir",
        &s.dir,
        "--colour",
        "yellow",
        "--name-hint",
        "张*",
        "--green-from",
        "2026-12-06",
    ]);
    let code = code.trim();
    assert!(code.starts_with("HC1:") && code.len() <= 220, "{code}");
    let png = s.base.join("code.png").display().to_string();
    ok(&["code", "render", code, "--png", &png]);
    let out = ok(&[
        "code",
        "verify",
        "--image",
        &png,
        "--trust-list",
        &s.list,
        "--root",
        &s.root,
    ]);
    assert!(
        out.starts_with("VALID YELLOW  name 张*  green from 2026-12-06  issuer CN-ZJ"),
        "{out}"
    );
    // The same code typed in, and as an SVG file.
    assert!(
        ok(&["code", "verify", code, "--trust-list", &s.list, "--root", &s.root]).starts_with("VALID YELLOW")
    );
    let svg = s.base.join("code.svg").display().to_string();
    ok(&["code", "render", code, "--svg", &svg]);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<?xml"));
}

#[test]
fn a_photo_as_jpeg_verifies() {
    let s = setup();
    let code = ok(&["code", "issue", "--dir", &s.dir, "--colour", "green"]);
    let png = s.base.join("code.png");
    ok(&[
        "code",
        "render",
        code.trim(),
        "--png",
        png.to_str().unwrap(),
        "--module-px",
        "6",
    ]);
    let jpg = s.base.join("code.jpg");
    image::open(&png).unwrap().to_rgb8().save(&jpg).unwrap();
    let out = ok(&[
        "code",
        "verify",
        "--image",
        jpg.to_str().unwrap(),
        "--trust-list",
        &s.list,
        "--root",
        &s.root,
    ]);
    assert!(out.starts_with("VALID GREEN"), "{out}");
}

#[test]
fn rotation_keeps_old_codes_valid_and_retirement_ends_them() {
    let s = setup();
    let old = ok(&["code", "issue", "--dir", &s.dir, "--colour", "green"]);
    // By default the new key waits a day, so verifiers learn it first: the old key still signs.
    ok(&["keys", "rotate", "--dir", &s.dir]);
    let list = ok(&["keys", "list", "--dir", &s.dir]);
    assert_eq!(list.matches("signing").count(), 1, "{list}");
    assert_eq!(list.matches("pending").count(), 1, "{list}");
    let meanwhile = ok(&["code", "issue", "--dir", &s.dir, "--colour", "yellow"]);
    ok(&[
        "code",
        "verify",
        meanwhile.trim(),
        "--trust-list",
        &s.list,
        "--root",
        &s.root,
    ]);
    // Rotating at once: the new key signs now, and an old trust list does not know it.
    ok(&["keys", "rotate", "--dir", &s.dir, "--activate-after-hours", "0"]);
    let new = ok(&["code", "issue", "--dir", &s.dir, "--colour", "red"]);
    let list = ok(&["keys", "list", "--dir", &s.dir]);
    assert_eq!(list.matches("signing").count(), 1, "{list}");
    assert_eq!(list.matches("verifying").count(), 1, "{list}");
    assert_eq!(list.matches("pending").count(), 1, "{list}");
    // The old trust list does not know the new key.
    let line = fails(
        &[
            "code",
            "verify",
            new.trim(),
            "--trust-list",
            &s.list,
            "--root",
            &s.root,
        ],
        1,
    );
    assert!(line.starts_with("INVALID: unknown key"), "{line}");
    ok(&["trust-list", "export", "--dir", &s.dir, "--out", &s.list]);
    ok(&[
        "code",
        "verify",
        old.trim(),
        "--trust-list",
        &s.list,
        "--root",
        &s.root,
    ]);
    ok(&[
        "code",
        "verify",
        new.trim(),
        "--trust-list",
        &s.list,
        "--root",
        &s.root,
    ]);
    // Retire the old key: its codes stop verifying once verifiers have the new list.
    let old_kid = list
        .lines()
        .find(|l| l.contains("verifying"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    ok(&["keys", "retire", &old_kid, "--dir", &s.dir]);
    ok(&["trust-list", "export", "--dir", &s.dir, "--out", &s.list]);
    let line = fails(
        &[
            "code",
            "verify",
            old.trim(),
            "--trust-list",
            &s.list,
            "--root",
            &s.root,
        ],
        1,
    );
    assert!(line.starts_with("INVALID: retired key"), "{line}");
}

#[test]
fn verdicts_for_bad_codes_are_one_line_and_exit_1() {
    let s = setup();
    let code = ok(&[
        "code", "issue", "--dir", &s.dir, "--colour", "green", "--ttl", "60",
    ]);
    let code = code.trim();
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let line = fails(
        &[
            "code",
            "verify",
            code,
            "--trust-list",
            &s.list,
            "--root",
            &s.root,
            "--at",
            &later,
        ],
        1,
    );
    assert!(line.starts_with("INVALID: expired at"), "{line}");
    let mut forged = code.to_owned();
    let i = forged.len() - 5;
    let c = if &forged[i..=i] == "A" { "B" } else { "A" };
    forged.replace_range(i..=i, c);
    let line = fails(
        &[
            "code",
            "verify",
            &forged,
            "--trust-list",
            &s.list,
            "--root",
            &s.root,
        ],
        1,
    );
    assert!(line.starts_with("INVALID: bad signature"), "{line}");
    let line = fails(
        &[
            "code",
            "verify",
            "HC1:NOT$BASE32",
            "--trust-list",
            &s.list,
            "--root",
            &s.root,
        ],
        1,
    );
    assert_eq!(
        line,
        "INVALID: malformed at character 7: '$' is not allowed in a code"
    );
    // A code from another issuer's keys.
    let other = setup();
    let foreign = ok(&["code", "issue", "--dir", &other.dir, "--colour", "green"]);
    let line = fails(
        &[
            "code",
            "verify",
            foreign.trim(),
            "--trust-list",
            &s.list,
            "--root",
            &s.root,
        ],
        1,
    );
    assert!(line.starts_with("INVALID: unknown key"), "{line}");
}

#[test]
fn bad_input_is_one_error_line_and_exit_2() {
    let s = setup();
    let code = ok(&["code", "issue", "--dir", &s.dir, "--colour", "green"]);
    let code = code.trim();
    let line = fails(
        &[
            "code",
            "verify",
            code,
            "--trust-list",
            "/no/such/list",
            "--root",
            &s.root,
        ],
        2,
    );
    assert!(line.starts_with("error: cannot read /no/such/list"), "{line}");
    let line = fails(
        &[
            "code",
            "verify",
            code,
            "--trust-list",
            &s.list,
            "--root",
            "not-a-key",
        ],
        2,
    );
    assert!(
        line.contains("neither a base64url Ed25519 public key nor a readable file"),
        "{line}"
    );
    // The right list checked with another issuer's root key.
    let other = setup();
    let other_root = Path::new(&other.dir).join("root.pub").display().to_string();
    let line = fails(
        &[
            "code",
            "verify",
            code,
            "--trust-list",
            &s.list,
            "--root",
            &other_root,
        ],
        2,
    );
    assert!(line.contains("not by the configured root key"), "{line}");
    let line = fails(
        &["code", "issue", "--dir", "/no/such/dir", "--colour", "green"],
        2,
    );
    assert!(line.contains("holds no keys"), "{line}");
    let line = fails(&["keys", "generate", "--dir", &s.dir], 2);
    assert!(line.contains("already holds keys"), "{line}");
    let garbage = s.base.join("garbage.png");
    std::fs::write(&garbage, b"this is not a picture").unwrap();
    let line = fails(
        &[
            "code",
            "verify",
            "--image",
            garbage.to_str().unwrap(),
            "--trust-list",
            &s.list,
            "--root",
            &s.root,
        ],
        2,
    );
    assert!(line.contains("cannot read the image"), "{line}");
    let line = fails(
        &[
            "trust-list",
            "verify",
            &garbage.display().to_string(),
            "--root",
            &s.root,
        ],
        1,
    );
    assert!(line.contains("not a trust list"), "{line}");
}

#[test]
fn unmasked_names_and_bad_arguments_are_refused_before_signing() {
    let s = setup();
    let o = healthcode(&[
        "code",
        "issue",
        "--dir",
        &s.dir,
        "--colour",
        "green",
        "--name-hint",
        "张三",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not masked"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let o = healthcode(&["code", "issue", "--dir", &s.dir, "--colour", "blue"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown colour"), "{}", stderr(&o));
    let o = healthcode(&[
        "code",
        "issue",
        "--dir",
        &s.dir,
        "--colour",
        "green",
        "--subject",
        "abc",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = healthcode(&[
        "code",
        "issue",
        "--dir",
        &s.dir,
        "--colour",
        "green",
        "--green-from",
        "2026-12-06",
    ]);
    let line = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{line}");
    assert!(
        line.contains("green code cannot carry a green-from date"),
        "{line}"
    );
}

#[cfg(unix)]
#[test]
fn private_keys_are_private_and_a_loose_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup();
    for entry in std::fs::read_dir(&s.dir).unwrap() {
        let p = entry.unwrap().path();
        if p.to_str().unwrap().ends_with(".key.pem") {
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{}",
                p.display()
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let line = fails(&["code", "issue", "--dir", &s.dir, "--colour", "green"], 2);
    assert!(line.contains("can be read by other users"), "{line}");
}

#[test]
fn the_signing_key_can_come_from_a_secret() {
    let s = setup();
    let pem_path = std::fs::read_dir(&s.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("signing-"))
        .unwrap();
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    std::fs::remove_file(&pem_path).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_healthcode"))
        .args(["code", "issue", "--dir", &s.dir, "--colour", "green"])
        .env("HEALTHCODE_SIGNING_KEY", &pem)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    ok(&[
        "code",
        "verify",
        stdout(&o).trim(),
        "--trust-list",
        &s.list,
        "--root",
        &s.root,
    ]);
    // Without the file and without the secret, it says where the key was looked for.
    let line = fails(&["code", "issue", "--dir", &s.dir, "--colour", "green"], 2);
    assert!(line.contains("signing-"), "{line}");
}

#[test]
fn admin_create_prints_a_one_time_password_once_per_name() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let out = ok(&["admin", "create", "--username", "root", "--data-dir", d]);
    let password = out.lines().next().unwrap().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(password.len(), 16, "{out}");
    assert!(
        data.join("healthcode.db").exists(),
        "the data directory is made as serve would"
    );
    // The same name again, a bad role, a bad name: one line each, nothing made.
    let line = fails(&["admin", "create", "--username", "root", "--data-dir", d], 2);
    assert!(line.contains("taken"), "{line}");
    let line = fails(
        &[
            "admin",
            "create",
            "--username",
            "eve",
            "--role",
            "god",
            "--data-dir",
            d,
        ],
        2,
    );
    assert!(line.contains("--role"), "{line}");
    let line = fails(&["admin", "create", "--username", "a b", "--data-dir", d], 2);
    assert!(line.contains("username"), "{line}");
    // Unlock, for a locked-out last admin: an account that is not locked says so; an unknown
    // name is refused.
    let out = ok(&["admin", "unlock", "root", "--data-dir", d]);
    assert!(out.contains("was not locked"), "{out}");
    let line = fails(&["admin", "unlock", "nobody", "--data-dir", d], 2);
    assert!(line.contains("no staff account"), "{line}");
    // A phone that is not one: refused before anything is made.
    let line = fails(
        &[
            "admin",
            "create",
            "--username",
            "wu.li",
            "--phone",
            "12345",
            "--data-dir",
            d,
        ],
        2,
    );
    assert!(line.contains("--phone"), "{line}");
    ok(&[
        "admin",
        "create",
        "--username",
        "wu.li",
        "--phone",
        "+8613900139055",
        "--data-dir",
        d,
    ]);
    // Break-glass reset: a new one-time password printed here; an unknown name refused.
    let out = ok(&["admin", "reset-password", "root", "--data-dir", d]);
    let again = out.lines().next().unwrap().rsplit(' ').next().unwrap().to_owned();
    assert_eq!(again.len(), 16, "{out}");
    assert_ne!(again, password);
    let line = fails(&["admin", "reset-password", "nobody", "--data-dir", d], 2);
    assert!(line.contains("no staff account"), "{line}");
    // The password is not stored in clear anywhere in the directory.
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(password.len()).any(|w| w == password.as_bytes()),
                "{} holds the password",
                path.display()
            );
        }
    }
}

#[test]
fn serve_refuses_a_configuration_it_cannot_honour() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(&cfg, "[sms]\nkind = \"http\"\n").unwrap();
    let d = tmp.path().join("data");
    let line = fails(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            d.to_str().unwrap(),
        ],
        2,
    );
    assert!(line.contains("sms.url"), "{line}");
    assert!(
        !d.exists(),
        "nothing is created for a configuration that is refused"
    );
    std::fs::write(&cfg, "[sms]\nkind = \"carrier-pigeon\"\n").unwrap();
    let line = fails(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            d.to_str().unwrap(),
        ],
        2,
    );
    assert!(line.contains("sms"), "{line}");
}
