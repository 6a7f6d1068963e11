// The classic standalone recipe on @presence/memory: a plain Socket.IO server
// that counts users (not sockets) and tells every client who comes and goes.
//   node examples/standalone.mjs   then open several clients with auth: { userId }
import { createServer } from "node:http";
import { Server } from "socket.io";
import { MemoryStore } from "../dist/index.js";

const store = new MemoryStore();
const http = createServer();
const io = new Server(http);

// demo only: a real app derives the user id from a verified token or session
const computeUserId = (socket) => socket.handshake.auth.userId;

io.on("connection", async (socket) => {
  const userId = computeUserId(socket);
  // the disconnect listener is attached before any await: no leak if the socket leaves early
  const connected = store.connect(socket.id, userId).catch((error) => {
    socket.disconnect(true);
    throw error;
  });
  socket.on("disconnect", async () => {
    await connected.catch(() => {});
    if (await store.disconnect(socket.id)) io.emit("user has disconnected", userId);
  });
  if (await connected.catch(() => false)) io.emit("user has connected", userId);
});

const port = Number(process.env.PORT ?? 3000);
http.listen(port, () => console.log(`standalone presence example on http://localhost:${http.address().port}`));
