-- The SMTP conversation no longer runs inside a transaction holding the row
-- lock (and a pooled connection) for its whole length: a delivery claims the
-- row for a bounded lease, commits, talks to SMTP, then records the outcome.
-- `claimed_until` is that lease: while it lies in the future another
-- delivery of the same order (a duplicate on another replica) leaves the row
-- alone and comes back later; once it has passed (the claimant died), the
-- next delivery may claim it again. NULL when nobody holds it.
ALTER TABLE email_log ADD COLUMN claimed_until timestamptz;
