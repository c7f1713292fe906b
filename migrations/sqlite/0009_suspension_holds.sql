-- Suspending a facility holds its certificates (issue 11, item 4).
-- Kept in step with the other dialect's 0009.

-- The certificates a facility's suspension keeps on hold, written in the
-- suspend transaction: the ones it put on hold (release_on_resume = 1) and the
-- ones already on hold then (0: a report's or a direct hold, left to its own
-- keeper after the resume). While the facility is suspended none of them is
-- released by anyone else; an escalation resolved as released meanwhile sets
-- release_on_resume instead. Resuming releases the rows marked 1 and deletes
-- the facility's rows; closing deletes them too.
create table suspension_holds (
    facility_id       integer not null references facilities (id),
    serial            text    not null references certificates (serial),
    release_on_resume integer not null check (release_on_resume in (0, 1)),
    primary key (facility_id, serial)
);
-- A release looks up what keeps a serial.
create index suspension_holds_serial on suspension_holds (serial);

-- Facilities suspended before this migration kept their certificates valid.
-- Holding them needs feed and audit rows, which SQL cannot write into the
-- hash chain: the server does it at start (Store::hold_suspended_facilities).
