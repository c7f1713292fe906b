-- A hold belongs to whoever placed it (issue 24): one 行政管理課 placed
-- directly is lifted only by 行政管理課, as a report's hold is lifted only
-- through its escalation and a suspension's by the resume. Written in the
-- hold's transaction, removed when the certificate is released. Kept in step
-- with the other dialect's 0019.
create table city_holds (
    serial  text    primary key references certificates (serial),
    held_at integer  not null
);
