-- An audit log that cannot be cut short (issue 10). Kept in step with the
-- other dialect's 0007.

-- Nothing to add: SQLite has no TRUNCATE, and `delete from audit_log` without
-- a WHERE clause (its truncate optimisation) is skipped whenever a delete
-- trigger exists, so 0001's audit_log_no_delete already refuses it. This file
-- keeps the migration numbers of both dialects in step.
select 1;
