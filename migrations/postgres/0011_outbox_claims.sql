-- The instance that claimed a pending notification for delivery. When that
-- instance stops beating, the others release its claims at once instead of
-- waiting for the claim to lapse. Cleared when the delivery is recorded, so
-- the index holds only the claims in flight.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
CREATE INDEX outbox_claimed_by ON outbox(claimed_by) WHERE claimed_by IS NOT NULL;
