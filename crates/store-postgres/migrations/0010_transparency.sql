-- The audit log's signed tree heads (docs/governance.md, "Transparency log"): each head the server
-- published whose size or root differed from the one before. Kept so that consistency proofs
-- between published heads can be served and `healthcode audit verify` can check the rows
-- against them.
CREATE TABLE tree_heads (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tree_size BIGINT NOT NULL CHECK (tree_size >= 0),
    root_hash BYTEA NOT NULL CHECK (length(root_hash) = 32),
    signed_at_ms BIGINT NOT NULL,
    key_id BYTEA NOT NULL CHECK (length(key_id) = 8),
    signature BYTEA NOT NULL CHECK (length(signature) = 64)
);
CREATE INDEX tree_heads_size ON tree_heads (tree_size);
