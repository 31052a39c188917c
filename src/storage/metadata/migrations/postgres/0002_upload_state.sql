-- What any replica needs to continue or complete an upload session: the hash
-- state after its committed bytes (Hasher::save, hex) and, when the session is
-- staged in a remote store, the names of its chunk objects in order.
ALTER TABLE uploads ADD COLUMN hash_state TEXT;
ALTER TABLE uploads ADD COLUMN chunks TEXT NOT NULL DEFAULT '';
