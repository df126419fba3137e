//! Files the server writes for itself (the admin token, the secret key): owner-only, never
//! overwritten.

use anyhow::Context;
use std::path::Path;

/// Creates a file readable only by this user (tokens, keys); refuses to overwrite one.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
