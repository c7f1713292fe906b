-- A device-management system is a user of the role `device_management`
-- (issue 26). SQLite cannot change a CHECK in place, and rebuilding users
-- (which many tables reference) needs foreign keys off, which sqlx's
-- migration transaction does not allow. The CHECK is widened instead by
-- SQLite's documented procedure for constraints that do not change the
-- file format (https://sqlite.org/lang_altertable.html, "making other kinds
-- of table schema changes"): the table's definition is edited in the schema
-- table; a throwaway table bumps the schema cookie, so every open
-- connection reads the new definition, and fails the migration (NOT NULL)
-- if the edit did not take. Kept in step with the other dialect's 0027.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
   SET sql = replace(sql, '''facility_manager'', ''staff''))', '''facility_manager'', ''staff'', ''device_management''))')
 WHERE type = 'table' AND name = 'users';
PRAGMA writable_schema = OFF;
CREATE TABLE schema_cookie_0027 (widened integer not null);
INSERT INTO schema_cookie_0027
SELECT CASE WHEN sql LIKE '%''device_management''%' THEN 1 END FROM sqlite_master WHERE type = 'table' AND name = 'users';
DROP TABLE schema_cookie_0027;
