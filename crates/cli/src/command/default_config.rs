//! `healthcode default-config`: the documented sample configuration.

use crate::Failure;

/// Prints the documented sample configuration.
pub fn default_config() -> Result<(), Failure> {
    print!("{}", healthcode_server::config::SAMPLE);
    Ok(())
}
