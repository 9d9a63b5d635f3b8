//! The operator's files: a `sigcast.toml` (every key, with every relation checked) and a
//! strategy definition from `signals/`. Nothing may panic; problems are errors.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sigcast::config::{Config, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Some((Path::new("/nonexistent/sigcast.toml"), text));
    let _ = Config::checked(file, &BTreeMap::new(), &Overrides::default());
    let _ = sigcast::strategy::definition::from_text(text);
});
