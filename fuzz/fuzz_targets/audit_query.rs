//! `/v1/audit-events` query strings: repeated and percent-encoded parameters, times, limits
//! and the cursor, exactly as the API reads them (`hookflow::audit::query`).
#![no_main]

use hookflow::store::Cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let _ = hookflow::audit::query::params(Some(query));
    if let Ok(parsed) = hookflow::audit::query::parse(Some(query)) {
        if let Some(cursor) = parsed.cursor.as_deref().and_then(Cursor::decode) {
            assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        }
    }
});
