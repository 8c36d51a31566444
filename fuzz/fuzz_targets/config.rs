//! Configuration from arbitrary TOML and arbitrary environment variables: every input is either
//! resolved settings or an error that names a setting, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match genscope::config::from_toml_str(text) {
        Ok(p) => {
            let _ = p.resolve();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // The same bytes as KEY=VALUE lines of an environment.
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match genscope::config::from_lookup(|key| {
        vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }) {
        Ok(p) => {
            let _ = p.resolve();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
