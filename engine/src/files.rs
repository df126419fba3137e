//! Files the server writes for itself (the admin token, the secret key, audit archives):
//! owner-only; tokens and keys are never overwritten.

use anyhow::Context;
use std::path::Path;

/// Creates `path` (and missing parents) as a directory only this user may enter, when it does
/// not exist yet; an existing directory keeps the mode its owner gave it.
pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .with_context(|| format!("creating directory {}", path.display()))
}

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

/// Opens `path` for appending, creating it readable only by this user (audit archives: every
/// event the log held).
pub fn open_private_append(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}
