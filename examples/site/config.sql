-- The example site: one server, one host, static pages and handler routes.
-- Load it with:  kennel load --db example.sqlite examples/site/config.sql
-- (`kennel load` creates the schema first when the database is new.)
-- Paths are relative to the directory Kennel runs in: the repository root
-- (the control port's too: `kennel control --db examples/site/config.sqlite
-- status what=net` from there; docs/control-port.md).

BEGIN;
DELETE FROM route; DELETE FROM host; DELETE FROM server;
DELETE FROM handler; DELETE FROM directory; DELETE FROM proxy;
DELETE FROM setting WHERE key LIKE 'kennel.%';

INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file,
                    default_host, bind_addr, port, use_ssl, control_port)
VALUES (1, 'b5a7c1e4-3f0d-4c38-9a1e-6f2d8c7b9e01', 'example',
        'examples/site/logs/access.log', 'examples/site/logs/error.log', '',
        'examples/site/run/kennel.pid', 'localhost', '127.0.0.1', 6767, 0,
        'ipc://examples/site/run/control');

INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');

-- The Rust example handler (examples/hello-handler) serves /hello, /stream,
-- /chat and the WebSocket /ws/chat; its send_ident is the UUID it puts in
-- front of replies.
INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident, raw_payload, protocol)
VALUES (1, 'tcp://127.0.0.1:9997', '9a3e1c52-7b64-4d0e-8f21-c5d4b3a29e10',
           'tcp://127.0.0.1:9996', '9a3e1c52-7b64-4d0e-8f21-c5d4b3a29e10', 0, 'tnetstring');

-- The Python example handler (examples/python/hello.py) serves /py/.
INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident, raw_payload, protocol)
VALUES (2, 'tcp://127.0.0.1:9995', '2f4c6e80-1a3b-4c5d-9e7f-a0b1c2d3e4f5',
           'tcp://127.0.0.1:9994', '2f4c6e80-1a3b-4c5d-9e7f-a0b1c2d3e4f5', 0, 'json');

INSERT INTO directory (id, base, index_file, default_ctype, cache_ttl)
VALUES (1, 'examples/site/public/', 'index.html', 'text/plain', 0);

INSERT INTO route (path, host_id, target_id, target_type) VALUES
    ('/',        1, 1, 'dir'),
    ('/hello',   1, 1, 'handler'),
    ('/stream',  1, 1, 'handler'),
    ('/chat',    1, 1, 'handler'),
    ('/ws/chat', 1, 1, 'handler'),
    ('/py/',     1, 2, 'handler'),
    ('/users/(\d+)$', 1, 1, 'handler');

INSERT INTO setting (key, value) VALUES ('kennel.handler.connect_wait_ms', '3000');
COMMIT;
