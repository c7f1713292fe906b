-- Enrollment codes are handed out as their secret alone and found by its
-- hash (issue 24): no id travels with a code for a stranger to guess and
-- aim wrong secrets at. Kept in step with the other dialect's 0021.
create index enrollment_codes_code_hash on enrollment_codes (code_hash);
