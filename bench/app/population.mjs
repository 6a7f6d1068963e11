// Who the benchmark's users are, shared by the server, the load processes and
// the coordinator: user i is "user-<i>", sits in room "room-<i / 50>" (the
// app joins it on connection), and follows 20 friends spread over the others.

/** Friends each client follows (fewer when there are fewer other users). */
export const FRIENDS = 20;
/** Members per room; the last room takes what is left. */
export const ROOM_SIZE = 50;
export const ROOM_PREFIX = "room-";

export const userId = (index) => `user-${index}`;
/** The index of a "user-<i>" id (the recipe's clients keep their list as a bitset by index). */
export const indexOf = (id) => Number(id.slice(5));

export const roomIndexOf = (index) => Math.floor(index / ROOM_SIZE);
export const roomOf = (index) => `${ROOM_PREFIX}${roomIndexOf(index)}`;
/** The indices of the members of user `index`'s room, the user included. */
export function roomMembers(index, n) {
  const first = roomIndexOf(index) * ROOM_SIZE;
  return Array.from({ length: Math.min(ROOM_SIZE, n - first) }, (_, k) => first + k);
}

/**
 * The indices of user `index`'s friends: distinct, never the user, spread
 * evenly over the population (so most live in other rooms and other load
 * processes), the same for every run of a given n.
 */
export function friendsOf(index, n) {
  const count = Math.min(FRIENDS, n - 1);
  const stride = Math.max(1, Math.floor((n - 1) / count));
  return Array.from({ length: count }, (_, j) => (index + 1 + j * stride) % n);
}

/**
 * The order the clients come in: a shuffle of every index, seeded, so that
 * every mode and every run sees the same storm, and a room's members (or a
 * load process's clients) do not come all at once.
 */
export function arrivalOrder(n, seed = 25) {
  let state = seed >>> 0;
  // mulberry32: small and good enough to shuffle
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
