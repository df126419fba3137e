-- Keys a flow's steps remembered (the `memory` host capability): "seen this IP before?". The
-- primary key makes "first time?" atomic across processes (INSERT … ON CONFLICT DO NOTHING).
CREATE TABLE flow_memory (
    flow_id TEXT COLLATE "C" NOT NULL,
    key     TEXT COLLATE "C" NOT NULL,
    created TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (flow_id, key)
);
