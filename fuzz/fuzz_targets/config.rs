//! Hostile config documents: the YAML and JSON loaders, then validation and
//! the build of a gateway from what loaded. Errors are fine; a panic is not.

use tollgate::{Config, Gateway};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        for loaded in [Config::from_yaml_str(text), Config::from_json_str(text)] {
            if let Ok(config) = loaded {
                let _ = config.validate();
                let _ = Gateway::builder(config).build();
            }
        }
    });
}
