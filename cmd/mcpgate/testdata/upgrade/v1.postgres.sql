--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
    id text NOT NULL,
    consumer text NOT NULL,
    hash bytea NOT NULL,
    metadata text DEFAULT ''::text NOT NULL,
    admin boolean DEFAULT false NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint DEFAULT 0 NOT NULL,
    revoked_at bigint DEFAULT 0 NOT NULL
);


--
-- Name: audit_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_events (
    id bigint NOT NULL,
    occurred_at bigint NOT NULL,
    event text NOT NULL,
    outcome text DEFAULT ''::text NOT NULL,
    reason_code text DEFAULT ''::text NOT NULL,
    upstream_id text DEFAULT ''::text NOT NULL,
    operation_id text DEFAULT ''::text NOT NULL,
    subject text DEFAULT ''::text NOT NULL,
    actor text DEFAULT ''::text NOT NULL,
    request_id text DEFAULT ''::text NOT NULL,
    details text DEFAULT ''::text NOT NULL
);


--
-- Name: audit_events_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.audit_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.audit_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: client_registrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.client_registrations (
    id bigint NOT NULL,
    issuer text NOT NULL,
    upstream_id text NOT NULL,
    redirect_uri text NOT NULL,
    method text DEFAULT ''::text NOT NULL,
    client_id text NOT NULL,
    client_secret text DEFAULT ''::text NOT NULL,
    auth_method text DEFAULT ''::text NOT NULL,
    registered_at bigint NOT NULL,
    expires_at bigint DEFAULT 0 NOT NULL
);


--
-- Name: client_registrations_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.client_registrations ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.client_registrations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: connections; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.connections (
    id bigint NOT NULL,
    upstream_id text NOT NULL,
    mode text NOT NULL,
    subject text NOT NULL,
    status text NOT NULL,
    access_token text DEFAULT ''::text NOT NULL,
    refresh_token text DEFAULT ''::text NOT NULL,
    expiry bigint DEFAULT 0 NOT NULL,
    scopes text DEFAULT ''::text NOT NULL,
    issuer text DEFAULT ''::text NOT NULL,
    token_endpoint text DEFAULT ''::text NOT NULL,
    client_id text DEFAULT ''::text NOT NULL,
    auth_method text DEFAULT ''::text NOT NULL,
    resource text DEFAULT ''::text NOT NULL,
    last_error_code text DEFAULT ''::text NOT NULL,
    last_error_message text DEFAULT ''::text NOT NULL,
    last_error_at bigint DEFAULT 0 NOT NULL,
    last_refresh_at bigint DEFAULT 0 NOT NULL,
    connected_by text DEFAULT ''::text NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    version bigint NOT NULL,
    CONSTRAINT connections_mode_check CHECK ((mode = ANY (ARRAY['user'::text, 'shared'::text]))),
    CONSTRAINT connections_status_check CHECK ((status = ANY (ARRAY['active'::text, 'reconsent_required'::text, 'revoked'::text])))
);


--
-- Name: connections_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.connections ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.connections_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: leases; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.leases (
    name text NOT NULL,
    holder text NOT NULL,
    expires_at bigint NOT NULL
);


--
-- Name: pending_authorizations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.pending_authorizations (
    id bigint NOT NULL,
    state_hash bytea NOT NULL,
    upstream_id text NOT NULL,
    mode text NOT NULL,
    subject text NOT NULL,
    verifier text DEFAULT ''::text NOT NULL,
    scopes text DEFAULT ''::text NOT NULL,
    elicitation_id text DEFAULT ''::text NOT NULL,
    browser_nonce_hash bytea NOT NULL,
    redirect_uri text DEFAULT ''::text NOT NULL,
    resource text DEFAULT ''::text NOT NULL,
    issuer text DEFAULT ''::text NOT NULL,
    operation_id text DEFAULT ''::text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);


--
-- Name: pending_authorizations_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

ALTER TABLE public.pending_authorizations ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.pending_authorizations_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version bigint NOT NULL,
    name text NOT NULL,
    applied_at bigint NOT NULL
);


--
-- Name: ticket_uses; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ticket_uses (
    ticket_id text NOT NULL,
    used_at bigint NOT NULL,
    expires_at bigint NOT NULL
);


--
-- Data for Name: api_keys; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.api_keys VALUES ('key_85e19bff545b92a6', 'alice', '\xfd89db6486b30517dca4402fe4b69049a1c4d531b5281d95b66e8deea00d8f64', '{"team":"platform"}', false, 1796306380063, 0, 0);
INSERT INTO public.api_keys VALUES ('key_641e127df3c932ff', 'ops', '\x02688347252eeeaddbeae3222fcf5ee5bef829757491260986b883e1940aac1e', '', true, 1796306380089, 0, 0);
INSERT INTO public.api_keys VALUES ('key_c79460ba813caf7a', 'bob', '\x671f8cddb3d9a05ab2e9ee37bc46a098e1fde7f6b8d326ca974d2b581e7b1672', '', false, 1796306380110, 0, 1796306382689);


--
-- Data for Name: audit_events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.audit_events OVERRIDING SYSTEM VALUE VALUES (1, 1796306380047, 'mcp_auth_upstream_connection_established', 'success', '', 'linear', '', 'apikey|alice', '', '', '');
INSERT INTO public.audit_events OVERRIDING SYSTEM VALUE VALUES (2, 1796306380071, 'api_key.created', 'success', '', '', '', 'apikey|alice', 'cli', '', '{"keyId":"key_85e19bff545b92a6","admin":false}');
INSERT INTO public.audit_events OVERRIDING SYSTEM VALUE VALUES (3, 1796306380097, 'api_key.created', 'success', '', '', '', 'apikey|ops', 'cli', '', '{"keyId":"key_641e127df3c932ff","admin":true}');
INSERT INTO public.audit_events OVERRIDING SYSTEM VALUE VALUES (4, 1796306380118, 'api_key.created', 'success', '', '', '', 'apikey|bob', 'cli', '', '{"keyId":"key_c79460ba813caf7a","admin":false}');
INSERT INTO public.audit_events OVERRIDING SYSTEM VALUE VALUES (5, 1796306382690, 'api_key.revoked', 'success', '', '', '', '', 'cli', '', '{"keyId":"key_c79460ba813caf7a"}');


--
-- Data for Name: client_registrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.client_registrations OVERRIDING SYSTEM VALUE VALUES (1, 'https://as.example', 'linear', 'https://gw.example/auth/connections/linear/callback', 'dcr', 'dcr-client', 'mg1.k1.bxRg3QeZ83eHDA1WWRnqbV6_Si4jmfBlcEOpCivLTxMn3gK3thQpuTvr8tKF', 'client_secret_post', 1796306380046, 0);


--
-- Data for Name: connections; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.connections OVERRIDING SYSTEM VALUE VALUES (1, 'linear', 'user', 'apikey|alice', 'active', 'mg1.k1.gD3PaLViY7YiQrbrpv0ZLGxxxQM2XePVwZglCAnNl-4fOZ8l4QM3Zw', 'mg1.k1.tymMLeKjU82xYa64oB45oDMUdozsefWYfB18gJC1qwFIHN8SlL5P-DA', 1893456000000, '["read","write"]', 'https://as.example', 'https://as.example/token', 'gw-linear', 'none', 'https://mcp.example/mcp', '', '', 0, 0, 'apikey|alice', 1796306380045, 1796306380045, 1);
INSERT INTO public.connections OVERRIDING SYSTEM VALUE VALUES (2, 'linear', 'user', 'apikey|bob', 'active', 'mg1.k1.TXTTi_Ml89sbY-5b5KkPYjEAN8ix7SYk1Bn8pBEAJE_JoATikqjc0Q', 'mg1.k1.lXgIyQw4cJ_MV9zw5EkFrlVUBtOFP7jl7pfsWrb1xner5BN_bKmMwQA', 1893456000000, '["read","write"]', 'https://as.example', 'https://as.example/token', 'gw-linear', 'none', 'https://mcp.example/mcp', '', '', 0, 0, 'apikey|bob', 1796306380046, 1796306380046, 1);


--
-- Data for Name: leases; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: pending_authorizations; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_migrations VALUES (1, '0001_init.sql', 1796306380043);


--
-- Data for Name: ticket_uses; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Name: audit_events_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.audit_events_id_seq', 5, true);


--
-- Name: client_registrations_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.client_registrations_id_seq', 1, true);


--
-- Name: connections_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.connections_id_seq', 2, true);


--
-- Name: pending_authorizations_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.pending_authorizations_id_seq', 1, false);


--
-- Name: api_keys api_keys_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_hash_key UNIQUE (hash);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);


--
-- Name: audit_events audit_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_events
    ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id);


--
-- Name: client_registrations client_registrations_issuer_upstream_id_redirect_uri_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.client_registrations
    ADD CONSTRAINT client_registrations_issuer_upstream_id_redirect_uri_key UNIQUE (issuer, upstream_id, redirect_uri);


--
-- Name: client_registrations client_registrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.client_registrations
    ADD CONSTRAINT client_registrations_pkey PRIMARY KEY (id);


--
-- Name: connections connections_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.connections
    ADD CONSTRAINT connections_pkey PRIMARY KEY (id);


--
-- Name: connections connections_upstream_id_mode_subject_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.connections
    ADD CONSTRAINT connections_upstream_id_mode_subject_key UNIQUE (upstream_id, mode, subject);


--
-- Name: leases leases_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.leases
    ADD CONSTRAINT leases_pkey PRIMARY KEY (name);


--
-- Name: pending_authorizations pending_authorizations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pending_authorizations
    ADD CONSTRAINT pending_authorizations_pkey PRIMARY KEY (id);


--
-- Name: pending_authorizations pending_authorizations_state_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.pending_authorizations
    ADD CONSTRAINT pending_authorizations_state_hash_key UNIQUE (state_hash);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: ticket_uses ticket_uses_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_uses
    ADD CONSTRAINT ticket_uses_pkey PRIMARY KEY (ticket_id);


--
-- Name: audit_events_subject; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_events_subject ON public.audit_events USING btree (subject, id);


--
-- Name: audit_events_time; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_events_time ON public.audit_events USING btree (occurred_at);


--
-- Name: audit_events_upstream; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_events_upstream ON public.audit_events USING btree (upstream_id, id);


--
-- Name: client_registrations_upstream; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX client_registrations_upstream ON public.client_registrations USING btree (upstream_id);


--
-- Name: connections_subject; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX connections_subject ON public.connections USING btree (subject);


--
-- Name: pending_authorizations_expires; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX pending_authorizations_expires ON public.pending_authorizations USING btree (expires_at);


--
-- Name: ticket_uses_expires; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_uses_expires ON public.ticket_uses USING btree (expires_at);


--
-- PostgreSQL database dump complete
--


