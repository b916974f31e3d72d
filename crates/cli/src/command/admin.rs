//! `healthcode admin create`: a staff account with a one-time password; `healthcode admin
//! unlock`: lifts an account's lock when no admin can sign in to do it; `healthcode admin
//! reset-password`: a new one-time password for an account with no phone to send one to.

use anyhow::anyhow;
use clap::Args;

use super::{ConfigArgs, runtime};
use crate::Failure;

/// `healthcode admin`.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Create a staff account and print its one-time password (the first sign-in replaces it).
    Create(CreateArgs),
    /// Lift the lock that repeated wrong second-factor codes put on an account (audited), for
    /// when no admin can sign in to do it.
    Unlock(UnlockArgs),
    /// Give an account a new one-time password, printed here, and end its sessions (audited):
    /// for an account with no phone to send one to, or when no admin can sign in.
    ResetPassword(ResetArgs),
}

/// `healthcode admin reset-password`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Username.
    username: String,
    /// Remove its second factor too (its owner enrols again at the next sign-in).
    #[arg(long)]
    second_factor: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// `healthcode admin unlock`.
#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Username.
    username: String,
    #[command(flatten)]
    config: ConfigArgs,
}

/// `healthcode admin create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Username.
    #[arg(long)]
    username: String,
    /// Role: admin, officer or auditor.
    #[arg(long, default_value = "admin")]
    role: String,
    /// The owner's phone (`+8613900139000`), where an admin's reset sends a new password; the
    /// owner can add it later on their account page.
    #[arg(long)]
    phone: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

impl AdminCommand {
    pub fn run(self) -> Result<(), Failure> {
        let args = match self {
            AdminCommand::Create(args) => args,
            AdminCommand::ResetPassword(args) => {
                let config = args.config.load()?;
                let password = runtime()?
                    .block_on(healthcode_server::ops::reset_password_now(
                        &config,
                        &args.username,
                        args.second_factor,
                    ))
                    .map_err(anyhow::Error::new)?;
                println!("{} has the one-time password: {password}", args.username);
                println!("give it to its owner in person; they replace it at the next sign-in.");
                return Ok(());
            }
            AdminCommand::Unlock(args) => {
                let config = args.config.load()?;
                let unlocked = runtime()?
                    .block_on(healthcode_server::ops::unlock_account_now(
                        &config,
                        &args.username,
                    ))
                    .map_err(anyhow::Error::new)?;
                if unlocked {
                    println!(
                        "unlocked {}; its owner signs in with the password and a code",
                        args.username
                    );
                } else {
                    println!("{} was not locked", args.username);
                }
                return Ok(());
            }
        };
        let role = healthcode_server::auth::parse_role(&args.role)
            .ok_or_else(|| anyhow!("--role must be admin, officer or auditor, not {:?}", args.role))?;
        let config = args.config.load()?;
        let password = runtime()?
            .block_on(healthcode_server::ops::create_account_at(
                &config,
                &args.username,
                role,
                args.phone.as_deref(),
                healthcode_server::now(),
            ))
            .map_err(anyhow::Error::new)?;
        println!(
            "created {} ({}) with one-time password: {password}",
            args.username, args.role
        );
        println!(
            "sign in at /console (or POST /api/v1/admin/sessions with new_password) and set a new password at once;"
        );
        println!(
            "then enrol an authenticator app (TOTP) as the second factor, unless [staff] second_factor = \"optional\"."
        );
        Ok(())
    }
}
