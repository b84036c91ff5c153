//! Hostile OpenAPI and Swagger documents for the importer (API Gateway's
//! extensions, VTL templates, models): errors are fine; a panic is not.

use tollgate::openapi::{ImportOptions, import};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let _ = import(text, &ImportOptions::default());
    });
}
