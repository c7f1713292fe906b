-- An audit log that cannot be cut short (issue 10). Kept in step with the
-- other dialect's 0007.

-- TRUNCATE fires no row-level trigger, so 0001's guard against update and
-- delete let it empty the log; a statement-level trigger refuses it too.
-- (A superuser can still drop the trigger: the checkpoints kept outside the
-- database are what detect that; see the README on the database role.)
create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function audit_log_append_only();
