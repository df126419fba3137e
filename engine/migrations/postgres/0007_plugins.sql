-- Installed plugin components, so every restart and every process serves them.
CREATE TABLE plugins (
    name      TEXT COLLATE "C" NOT NULL,
    version   TEXT COLLATE "C" NOT NULL,
    digest    TEXT NOT NULL,
    component BYTEA NOT NULL,
    installed TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (name, version)
);
