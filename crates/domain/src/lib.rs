//! Holders, venues and the facts the colour rules read. Pure types: nothing here does I/O, and
//! every value is parsed at the edge into a type that can only hold a valid one.

pub mod identity;
pub mod model;
pub mod registration;

pub use identity::{
    IdentityDocument, IdentityError, Nationality, PassportNumber, Phone, ResidentIdNumber, Td3,
    latest_date_anywhere, resident_id_check_char,
};
pub use model::*;
pub use registration::{FlightNumber, FullName, ResidentRegistration, VisitorInput, VisitorRegistration};
