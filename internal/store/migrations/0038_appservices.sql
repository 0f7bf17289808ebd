-- Application services (issue 19): how far through the event stream
-- each service's transactions have been delivered. The stream itself is
-- the queue: a service that is down is sent the events after its
-- position when it returns, in stream order, and a restart resumes
-- there. Keyed by the registration's id.
CREATE TABLE appservice_positions (
    as_id    TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
