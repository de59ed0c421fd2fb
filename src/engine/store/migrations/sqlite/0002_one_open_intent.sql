-- At most one open create intent per source record and target system: two runs can never both
-- be creating a copy of the same record (B20 across concurrent jobs). Older duplicates (from
-- before this rule) are abandoned, keeping the oldest, whose create happened first if at all.
UPDATE intents SET state = 'abandoned'
WHERE state = 'open'
  AND id NOT IN (
    SELECT MIN(id) FROM intents WHERE state = 'open'
    GROUP BY object, source_system, source_id, target_system
  );
CREATE UNIQUE INDEX intents_one_open
    ON intents (object, source_system, source_id, target_system)
    WHERE state = 'open';
