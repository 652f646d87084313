-- Privileges that cross every file: users hold no privilege on settle's sequences.
--
-- Supabase's default privileges grant every new sequence in public to anon and authenticated,
-- and each file's `revoke all on <its tables>` does not cover sequences: anon could nextval()
-- the identity sequences (burn ids, read how many webhook events and ledger entries exist).
-- Identity columns need no privilege on their sequence to insert, so service_role keeps working
-- without one too, but it keeps its grants (it is the server). This file runs after every file
-- that creates a table; a later migration that adds an identity column revokes its own.
--
-- The default privileges themselves are left alone: they belong to the project, whose own app
-- may rely on them. pgTAP (10-privileges) instead checks every object in public and settle
-- against an allowlist, so a later migration that forgets its revoke fails the suite.
revoke all on all sequences in schema public from public, anon, authenticated, payment_analyst;
revoke all on all sequences in schema settle from public, anon, authenticated, payment_analyst;
