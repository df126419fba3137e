-- Installed plugin components, so every restart (and, on PostgreSQL, every process) serves them.
CREATE TABLE plugins (
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    digest    TEXT NOT NULL,
    component BLOB NOT NULL,
    installed TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
