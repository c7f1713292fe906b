-- A retirement can bring the account's deletion with it (issue 25: アカウント
-- 削除 offered in the same flow): scheduled together, the worker that
-- carries out the retirement deletes the account in the same transaction.
-- Kept in step with the other dialect's 0023.
alter table users add column delete_on_retire integer not null default 0;
