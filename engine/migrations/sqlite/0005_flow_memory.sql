-- Keys a flow's steps remembered (the `memory` host capability): "seen this IP before?".
CREATE TABLE flow_memory (
    flow_id TEXT NOT NULL,
    key     TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (flow_id, key)
) WITHOUT ROWID;
