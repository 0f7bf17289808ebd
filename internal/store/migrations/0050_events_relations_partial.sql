-- Every query of events_relations names a parent (relates_to = $1, IN
-- (...), or a join on it), which implies relates_to IS NOT NULL on both
-- databases: the events that relate to nothing (nearly all of a busy
-- room's messages) need no entry. Each had one, a B-tree insert and its
-- share of a WAL page per event stored.
-- (TestRelationQueriesUseRelationsIndex checks the plans.)
DROP INDEX events_relations;
CREATE INDEX events_relations ON events (relates_to, rel_type) WHERE relates_to IS NOT NULL;
