-- Holds are lifted only through the escalation that placed them (issue 10).
-- Kept in step with the other dialect's 0006.

-- The certificates an emergency report put on hold, written in the report's
-- transaction. While the escalation is open or claimed they cannot be
-- released directly, and resolving it as released lifts these and no others.
create table escalation_holds (
    escalation_id bigint  not null references escalations (id),
    serial        text    not null references certificates (serial),
    primary key (escalation_id, serial)
);
-- A release looks up the escalations that cover a serial.
create index escalation_holds_serial on escalation_holds (serial);

-- Escalations already open when this runs did not record their holds. They
-- get every hold their device carries now: resolving them as released then
-- lifts what it lifted before this migration, and a direct release of those
-- certificates waits for the escalation, as for a new one.
insert into escalation_holds (escalation_id, serial)
select e.id, c.serial from escalations e join certificates c on c.device_id = e.device_id
where e.status in ('open', 'claimed') and c.status = 'on_hold';
