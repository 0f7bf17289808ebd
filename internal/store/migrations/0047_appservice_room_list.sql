-- Application services' room directories (issue 19): rooms a service
-- publishes in the directory of one of its networks with
-- PUT /directory/list/appservice/{networkId}/{roomId}, as Synapse's
-- appservice_room_list. /publicRooms lists them with
-- third_party_instance_id = "{appservice id}|{network id}" or
-- include_all_networks, and not otherwise.
CREATE TABLE appservice_room_list (
    as_id      TEXT NOT NULL,
    network_id TEXT NOT NULL,
    room_id    TEXT NOT NULL,
    PRIMARY KEY (as_id, network_id, room_id)
);
CREATE INDEX appservice_room_list_room ON appservice_room_list (room_id);
