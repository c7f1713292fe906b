-- A device-management system is a user of the role `device_management`
-- (issue 26). Kept in step with the other dialect's 0027.
alter table users drop constraint users_role_check;
alter table users add constraint users_role_check
    check (role in ('admin_division', 'welfare_division', 'facility_manager', 'staff', 'device_management'));
