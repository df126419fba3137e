-- Finding the head of each destination's queue must not scan the delivered history.
CREATE INDEX outbox_pending ON outbox(destination_id, audit_seq) WHERE status = 'PENDING';
