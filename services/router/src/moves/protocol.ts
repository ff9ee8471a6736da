/** Major version of the node-to-node move protocol (internal-routes.ts); a peer speaking another major is refused. */
export const MOVE_PROTOCOL_VERSION = '1';
