// The playground's Telegram app: chats over the emulator, live by server-sent events.
"use strict";

const $ = (selector) => document.querySelector(selector);
const ALBUM_LIMIT = 10;
// How long "typing…" stays after the bot's sendChatAction (Telegram shows it 5 s).
const ACTION_MS = 5000;
const ACTIONS = {
  typing: "typing…",
  upload_photo: "sending a photo…",
  upload_video: "sending a video…",
  upload_document: "sending a file…",
  record_video: "recording a video…",
};
// Inline mode: typing pauses this long before the query goes out, as in Telegram's apps; a
// query holds at most this many characters.
const INLINE_DEBOUNCE_MS = 300;
const INLINE_QUERY_LIMIT = 256;

const state = {
  bot: null,
  users: new Map(), // user id -> User
  chats: [], // {id, title, type, members}
  messages: new Map(), // chat id -> Map(message id -> Message)
  current: null, // the chat on screen
  senders: new Map(), // chat id -> the user writing in it
  replyTo: null, // the message the next one answers
  photos: [], // Files to send
  pressed: new Map(), // callback query id -> the button pressed
  unread: new Map(), // chat id -> count
  menu: [], // the command menu of the chat on screen
  actionTimer: null,
  atBottom: true, // whether the chat is scrolled to its newest message
  // `@bot query` being typed: the query shown, the next page's offset, and a number that
  // makes answers to older queries (or to a closed panel) stale.
  inline: { timer: null, query: null, nextOffset: "", loading: false, generation: 0 },
};

// ------------------------------------------------------------------ talking to the server

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = {};
  try {
    body = await response.json();
  } catch (error) {
    body = { error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function postJSON(path, body) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

// ------------------------------------------------------------------ state

function sender(chat = state.current) {
  return state.senders.get(chat.id) ?? chat.members[0];
}

function chatById(id) {
  return state.chats.find((chat) => chat.id === id);
}

function userName(user) {
  if (!user) return "";
  if (user.id === state.bot.id) return state.bot.first_name;
  return [user.first_name, user.last_name].filter(Boolean).join(" ");
}

function keep(message) {
  const chatId = message.chat.id;
  if (!state.messages.has(chatId)) state.messages.set(chatId, new Map());
  state.messages.get(chatId).set(message.message_id, message);
}

function applyState(snapshot) {
  state.bot = snapshot.bot;
  state.users = new Map(snapshot.users.map((user) => [user.id, user]));
  state.chats = snapshot.chats.map(({ messages, ...chat }) => chat);
  state.messages = new Map();
  for (const chat of snapshot.chats) chat.messages.forEach(keep);
  if (!state.current || !chatById(state.current.id)) state.current = state.chats[0];
  else state.current = chatById(state.current.id);
  document.querySelectorAll(".inline-hint").forEach((hint) => {
    hint.textContent = `@${state.bot.username}`;
  });
}

// ------------------------------------------------------------------ live events

function handle(event) {
  if (event.type === "message") {
    const message = event.message;
    const chatId = message.chat.id;
    const known = state.messages.get(chatId)?.has(message.message_id);
    keep(message);
    if (state.current && chatId === state.current.id) {
      showMessage(message);
      if (event.keyboard) offerKeyboard(message, event.keyboard);
    } else if (!known && chatById(chatId)) {
      state.unread.set(chatId, (state.unread.get(chatId) || 0) + 1);
      renderChats();
    }
  } else if (event.type === "delete") {
    state.messages.get(event.chat_id)?.delete(event.message_id);
    rowOf(event.chat_id, event.message_id)?.remove();
  } else if (event.type === "answer") {
    answered(event.query_id, event.answer);
  } else if (event.type === "action") {
    if (state.current && event.chat_id === state.current.id) showAction(event.action);
  } else if (event.type === "commands") {
    loadMenu();
  }
}

function connect() {
  let buffered = [];
  let loaded = false;
  const source = new EventSource("/api/events");
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (loaded) handle(event);
    else buffered.push(event);
  };
  // On every (re)connection: the whole state again, then what came meanwhile.
  source.onopen = async () => {
    loaded = false;
    try {
      applyState(await api("/api/state"));
    } catch (error) {
      toast(`Could not load the chats: ${error.message}`);
      return;
    }
    loaded = true;
    renderChats();
    openChat(state.current);
    const pending = buffered;
    buffered = [];
    pending.forEach(handle);
    document.body.dataset.ready = "1";
  };
  source.onerror = () => {
    document.body.dataset.ready = "0";
    setStatus("connecting…", true);
  };
}

// ------------------------------------------------------------------ chats list and header

function initials(title) {
  const words = title.split(/\s+/).filter((word) => /^\p{L}/u.test(word));
  return words.slice(0, 2).map((word) => word[0]).join("").toUpperCase();
}

function renderChats() {
  const list = $("#chats");
  list.replaceChildren();
  for (const chat of state.chats) {
    const item = document.createElement("button");
    item.type = "button";
    item.className = "chat-item";
    item.dataset.chatId = chat.id;
    item.setAttribute("aria-current", String(state.current?.id === chat.id));
    const avatar = document.createElement("div");
    avatar.className = `avatar ${chat.type === "private" ? "user" : "group"}`;
    avatar.textContent = initials(chat.type === "private" ? chat.title.split(" ")[0] : chat.title);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = chat.title;
    item.append(avatar, name);
    const unread = state.unread.get(chat.id);
    if (unread) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = unread;
      item.append(badge);
    }
    item.addEventListener("click", () => openChat(chat));
    list.append(item);
  }
}

function setStatus(text, active = false) {
  const status = $("#chat-status");
  status.textContent = text;
  status.classList.toggle("active", active);
}

function idleStatus() {
  const chat = state.current;
  if (chat.type === "private") setStatus("bot");
  else setStatus(`${chat.members.length + 1} members: ${chat.members.map((id) => userName(state.users.get(id))).join(", ")} and the bot`);
}

function showAction(action) {
  setStatus(`${state.bot.first_name} is ${ACTIONS[action] || action.replaceAll("_", " ")}`, true);
  clearTimeout(state.actionTimer);
  state.actionTimer = setTimeout(idleStatus, ACTION_MS);
}

function renderSender() {
  const box = $("#sender");
  const chat = state.current;
  box.hidden = chat.members.length < 2;
  box.replaceChildren();
  if (box.hidden) return;
  const label = document.createElement("span");
  label.textContent = "Writing as";
  box.append(label);
  for (const id of chat.members) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = userName(state.users.get(id));
    button.setAttribute("aria-pressed", String(sender() === id));
    button.addEventListener("click", () => {
      state.senders.set(chat.id, id);
      closeInline();
      renderSender();
      renderMessages();
      loadMenu();
    });
    box.append(button);
  }
}

function openChat(chat) {
  state.current = chat;
  state.unread.delete(chat.id);
  cancelReply();
  closeInline();
  $("#chat-title").textContent = chat.type === "private" ? state.bot.first_name : chat.title;
  const avatar = $("#chat-avatar");
  avatar.className = `avatar ${chat.type === "private" ? "" : "group"}`;
  avatar.textContent = initials(chat.type === "private" ? state.bot.first_name : chat.title);
  renderChats();
  renderSender();
  idleStatus();
  renderMessages();
  loadMenu();
  $("#input").focus();
}

// ------------------------------------------------------------------ messages

function rowOf(chatId, messageId) {
  return $(`#messages .row[data-chat-id="${chatId}"][data-message-id="${messageId}"]`);
}

function renderMessages() {
  const box = $("#messages");
  box.replaceChildren();
  const messages = [...(state.messages.get(state.current.id)?.values() || [])];
  messages.sort((a, b) => a.message_id - b.message_id);
  messages.forEach((message) => box.append(messageRow(message)));
  box.scrollTop = box.scrollHeight;
  state.atBottom = true;
}

function nearBottom() {
  const box = $("#messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
}

// Media that loads late grows the chat: who was reading the newest stays with it.
function keepAtBottom() {
  if (state.atBottom) $("#messages").scrollTop = $("#messages").scrollHeight;
}

function showMessage(message) {
  const box = $("#messages");
  const atBottom = nearBottom();
  const row = messageRow(message);
  const old = rowOf(message.chat.id, message.message_id);
  if (old) {
    old.replaceWith(row);
    return;
  }
  const later = [...box.children].find((other) => Number(other.dataset.messageId) > message.message_id);
  box.insertBefore(row, later || null);
  if (atBottom || message.from?.id === sender()) box.scrollTop = box.scrollHeight;
}

function time(message) {
  const date = new Date((message.edit_date || message.date) * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function messageRow(message) {
  const row = document.createElement("div");
  row.dataset.chatId = message.chat.id;
  row.dataset.messageId = message.message_id;
  const service = serviceText(message);
  if (service) {
    row.className = "row service";
    const span = document.createElement("span");
    span.textContent = service;
    row.append(span);
    return row;
  }
  const fromBot = message.from?.id === state.bot.id;
  const mine = !fromBot && message.from?.id === sender();
  row.className = `row ${mine ? "out" : "in"}`;
  const bubble = document.createElement("div");
  bubble.className = "msg";
  const named = state.current.type !== "private" && !mine;
  if (named || message.via_bot) {
    const from = document.createElement("div");
    from.className = "from";
    if (named) from.append(userName(message.from));
    if (message.via_bot) from.append(viaBot(message.via_bot, named));
    bubble.append(from);
  }
  if (message.reply_to_message) bubble.append(replyQuote(message.reply_to_message));
  const media = mediaOf(message);
  if (media) bubble.append(media);
  if (message.invoice) bubble.append(invoiceCard(message));
  const text = message.text ?? message.caption;
  if (text) {
    const body = document.createElement("div");
    body.className = "text";
    body.append(renderText(text, message.entities || message.caption_entities || []));
    bubble.append(body);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = (message.edit_date ? "edited " : "") + time(message);
  bubble.append(meta);

  const stack = document.createElement("div");
  stack.className = "stack";
  stack.append(bubble);
  const rows = message.reply_markup?.inline_keyboard;
  if (rows?.length) stack.append(inlineKeyboard(message, rows));
  const reply = document.createElement("button");
  reply.type = "button";
  reply.className = "reply-action";
  reply.title = "Reply";
  reply.setAttribute("aria-label", "Reply");
  reply.textContent = "↩";
  reply.addEventListener("click", () => startReply(message));
  row.append(stack, reply);
  return row;
}

// "via @bot" on a message sent from inline results; pressing it starts another inline query.
function viaBot(bot, named) {
  const via = document.createElement("button");
  via.type = "button";
  via.className = "via";
  via.textContent = `${named ? " " : ""}via @${bot.username}`;
  via.addEventListener("click", () => {
    $("#input").value = `@${bot.username} `;
    $("#input").focus();
    inlineInput();
  });
  return via;
}

function serviceText(message) {
  const paid = message.successful_payment;
  if (paid) return `${userName(message.from)} paid ${price(paid.total_amount, paid.currency)}`;
  const refunded = message.refunded_payment;
  if (refunded) return `${price(refunded.total_amount, refunded.currency)} refunded to ${userName(message.from)}`;
  return "";
}

function price(amount, currency) {
  return currency === "XTR" ? `⭐ ${amount}` : `${(amount / 100).toFixed(2)} ${currency}`;
}

function replyQuote(replied) {
  const quote = document.createElement("div");
  quote.className = "reply-quote";
  const name = document.createElement("b");
  name.textContent = userName(replied.from);
  quote.append(name, document.createTextNode(snippet(replied)));
  quote.addEventListener("click", () => {
    const target = rowOf(replied.chat.id, replied.message_id);
    if (!target) return;
    target.scrollIntoView({ block: "center", behavior: "smooth" });
    const bubble = target.querySelector(".msg");
    bubble?.classList.add("flash");
    setTimeout(() => bubble?.classList.remove("flash"), 1200);
  });
  return quote;
}

function snippet(message) {
  const text = message.text ?? message.caption ?? "";
  if (text) return text.split("\n")[0];
  if (message.photo) return "Photo";
  if (message.animation) return "GIF";
  if (message.video) return "Video";
  if (message.document) return message.document.file_name || "File";
  if (message.invoice) return message.invoice.title;
  return "Message";
}

function mediaOf(message) {
  const media = document.createElement("div");
  media.className = "media";
  if (message.photo?.length) {
    const biggest = message.photo[message.photo.length - 1];
    const image = document.createElement("img");
    image.src = `/media/${encodeURIComponent(biggest.file_id)}`;
    image.alt = message.caption || "Photo";
    // Its place is kept before it loads, so the chat does not jump.
    image.width = biggest.width;
    image.height = biggest.height;
    image.addEventListener("load", keepAtBottom);
    media.append(image);
    return media;
  }
  const moving = message.animation || message.video;
  if (moving) {
    const video = document.createElement("video");
    video.src = `/media/${encodeURIComponent(moving.file_id)}`;
    video.playsInline = true;
    if (message.animation) {
      video.autoplay = video.loop = video.muted = true;
    } else {
      video.controls = true;
    }
    media.append(video);
    return media;
  }
  if (message.document) {
    const link = document.createElement("a");
    link.className = "document";
    link.href = `/media/${encodeURIComponent(message.document.file_id)}`;
    link.download = message.document.file_name || "file";
    const icon = document.createElement("span");
    icon.className = "icon-file";
    icon.textContent = "⤓";
    const name = document.createElement("span");
    name.textContent = message.document.file_name || "File";
    const size = document.createElement("small");
    size.textContent = `${(message.document.file_size / 1024 / 1024).toFixed(1)} MB`;
    name.append(size);
    link.append(icon, name);
    return link;
  }
  return null;
}

function invoiceCard(message) {
  const { title, description, total_amount: amount, currency } = message.invoice;
  const card = document.createElement("div");
  card.className = "invoice";
  const head = document.createElement("div");
  head.className = "title";
  head.textContent = title;
  const text = document.createElement("div");
  text.textContent = description;
  const cost = document.createElement("div");
  cost.className = "price";
  cost.textContent = price(amount, currency);
  const pay = document.createElement("button");
  pay.type = "button";
  pay.className = "pay";
  pay.textContent = `Pay ${price(amount, currency)}`;
  pay.addEventListener("click", () => payInvoice(message, pay));
  card.append(head, text, cost, pay);
  return card;
}

// Telegram's entities (UTF-16 offsets, as JavaScript strings count) as nested elements.
function renderText(text, entities) {
  const sorted = [...entities].sort((a, b) => a.offset - b.offset || b.length - a.length);
  const root = document.createDocumentFragment();
  build(text, 0, text.length, sorted, root);
  return root;
}

function build(text, start, end, entities, parent) {
  let position = start;
  let index = 0;
  while (index < entities.length) {
    const entity = entities[index];
    const from = Math.max(entity.offset, position);
    const to = Math.min(entity.offset + entity.length, end);
    if (from > position) parent.append(text.slice(position, from));
    const inner = [];
    let next = index + 1;
    while (next < entities.length && entities[next].offset < to) inner.push(entities[next++]);
    const element = entityElement(entity, text.slice(entity.offset, entity.offset + entity.length));
    build(text, from, to, inner, element.querySelector("code") || element);
    parent.append(element);
    position = Math.max(position, to);
    index = next;
  }
  if (position < end) parent.append(text.slice(position, end));
}

function entityElement(entity, covered) {
  const make = (tag, className) => {
    const element = document.createElement(tag);
    if (className) element.className = className;
    return element;
  };
  switch (entity.type) {
    case "bold": return make("b");
    case "italic": return make("i");
    case "underline": return make("u");
    case "strikethrough": return make("s");
    case "code": return make("code");
    case "pre": {
      const pre = make("pre");
      pre.append(make("code"));
      return pre;
    }
    case "blockquote": return make("blockquote");
    case "expandable_blockquote": return make("blockquote", "expandable");
    case "spoiler": {
      const spoiler = make("span", "spoiler");
      spoiler.addEventListener("click", () => spoiler.classList.add("shown"));
      return spoiler;
    }
    case "text_link":
    case "url": {
      const link = make("a");
      const href = entity.type === "url" ? covered : entity.url;
      if (/^(https?:|tg:|mailto:)/i.test(href)) link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      return link;
    }
    case "bot_command": {
      const link = make("a", "command");
      link.addEventListener("click", () => sendText(covered));
      return link;
    }
    default: return make("span", entity.type);
  }
}

// ------------------------------------------------------------------ buttons

function inlineKeyboard(message, rows) {
  const keyboard = document.createElement("div");
  keyboard.className = "keyboard";
  for (const row of rows) {
    const line = document.createElement("div");
    line.className = "krow";
    for (const button of row) {
      const element = document.createElement("button");
      element.type = "button";
      element.textContent = button.text;
      if (button.web_app || button.url) {
        const kind = document.createElement("span");
        kind.className = "kind";
        kind.textContent = button.web_app ? "⧉" : "↗";
        kind.setAttribute("aria-hidden", "true");
        element.append(kind);
      }
      element.addEventListener("click", () => pressButton(message, button, element));
      line.append(element);
    }
    keyboard.append(line);
  }
  return keyboard;
}

async function pressButton(message, button, element) {
  if (button.callback_data !== undefined) {
    element.classList.add("waiting");
    try {
      const { query_id: queryId } = await postJSON("/api/press", {
        chat_id: message.chat.id,
        message_id: message.message_id,
        user_id: sender(),
        data: button.callback_data,
      });
      state.pressed.set(queryId, element);
      // Telegram stops the spinner after a while even if the bot never answers.
      setTimeout(() => answered(queryId, null), 15000);
    } catch (error) {
      element.classList.remove("waiting");
      toast(error.message);
    }
  } else if (button.web_app) {
    openWebApp(button.web_app.url, button.text);
  } else if (button.url) {
    window.open(button.url, "_blank", "noopener");
  } else if (button.copy_text) {
    await navigator.clipboard?.writeText(button.copy_text.text);
    toast("Copied");
  } else {
    toast("This kind of button does nothing in the playground.");
  }
}

function answered(queryId, answer) {
  const element = state.pressed.get(queryId);
  if (element === undefined) return;
  state.pressed.delete(queryId);
  element.classList.remove("waiting");
  if (!answer?.text) return;
  if (answer.show_alert) alertBox(answer.text);
  else toast(answer.text);
}

async function payInvoice(message, button) {
  button.disabled = true;
  try {
    const answer = await postJSON("/api/pay", {
      chat_id: message.chat.id,
      message_id: message.message_id,
      user_id: sender(),
    });
    if (!answer.ok) alertBox(answer.error_message || "The bot declined the payment.");
  } catch (error) {
    alertBox(error.message);
  } finally {
    button.disabled = false;
  }
}

// A reply keyboard or force_reply that came with a bot message: force_reply starts a reply.
function offerKeyboard(message, keyboard) {
  if (!keyboard.force_reply) return;
  const replied = message.reply_to_message;
  if (keyboard.selective && replied && replied.from?.id !== sender()) return;
  startReply(message, keyboard.input_field_placeholder);
}

// ------------------------------------------------------------------ Mini Apps

function themeParams() {
  const style = getComputedStyle(document.documentElement);
  const color = (name) => style.getPropertyValue(name).trim();
  return {
    bg_color: color("--bg"),
    text_color: color("--text"),
    hint_color: color("--hint"),
    link_color: color("--accent"),
    button_color: color("--accent"),
    button_text_color: color("--accent-text"),
    secondary_bg_color: color("--hover"),
  };
}

async function openWebApp(url, title) {
  let initData;
  try {
    ({ init_data: initData } = await postJSON("/api/webapp", {
      chat_id: state.current.id,
      user_id: sender(),
    }));
  } catch (error) {
    toast(error.message);
    return;
  }
  // As Telegram's apps do: initData and the theme in the fragment, which
  // telegram-web-app.js (or the page itself) reads.
  const fragment = new URLSearchParams({
    tgWebAppData: initData,
    tgWebAppVersion: "8.0",
    tgWebAppPlatform: "web",
    tgWebAppThemeParams: JSON.stringify(themeParams()),
  });
  $("#webapp-title").textContent = title;
  $("#webapp-frame").src = `${url.split("#")[0]}#${fragment}`;
  $("#webapp").hidden = false;
}

function closeWebApp() {
  $("#webapp").hidden = true;
  $("#webapp-frame").src = "about:blank";
}

// telegram-web-app.js inside a frame talks to the app by postMessage.
window.addEventListener("message", (event) => {
  if (event.source !== $("#webapp-frame").contentWindow) return;
  let data = event.data;
  try {
    if (typeof data === "string") data = JSON.parse(data);
  } catch (error) {
    return;
  }
  if (data?.eventType === "web_app_close") closeWebApp();
});

// ------------------------------------------------------------------ writing

function startReply(message, placeholder) {
  state.replyTo = message;
  $("#reply-name").textContent = userName(message.from);
  $("#reply-text").textContent = snippet(message);
  $("#reply-bar").hidden = false;
  $("#input").placeholder = placeholder || "Message";
  $("#input").focus();
}

function cancelReply() {
  state.replyTo = null;
  $("#reply-bar").hidden = true;
  $("#input").placeholder = "Message";
}

function setPhotos(files) {
  state.photos = [...files].filter((file) => file.type.startsWith("image/")).slice(0, ALBUM_LIMIT);
  const previews = $("#attach-previews");
  previews.replaceChildren(
    ...state.photos.map((file) => {
      const image = document.createElement("img");
      image.src = URL.createObjectURL(file);
      image.alt = file.name;
      return image;
    }),
  );
  $("#attach-bar").hidden = state.photos.length === 0;
  if (files.length > ALBUM_LIMIT) toast(`An album holds at most ${ALBUM_LIMIT} photos.`);
}

async function send() {
  const input = $("#input");
  const text = input.value.trim();
  if (!text && !state.photos.length) return;
  const form = new FormData();
  form.append("chat_id", state.current.id);
  form.append("user_id", sender());
  form.append("text", text);
  const reply = state.replyTo;
  const photos = state.photos;
  if (reply) form.append("reply_to", reply.message_id);
  for (const photo of photos) form.append("photo", photo, photo.name);
  // Clear the composer before the request, as Telegram does: the message can reach the chat
  // (over the event stream) before the request returns, and the reply bar must not outlive it.
  input.value = "";
  autosize();
  setPhotos([]);
  $("#file").value = "";
  cancelReply();
  hideSuggestions();
  closeInline();
  try {
    await api("/api/send", { method: "POST", body: form });
  } catch (error) {
    // Give the draft back so nothing typed is lost.
    input.value = text;
    autosize();
    setPhotos(photos);
    if (reply) startReply(reply);
    alertBox(error.message);
  }
}

function sendText(text) {
  $("#input").value = text;
  state.photos = [];
  send();
}

function autosize() {
  const input = $("#input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, 180)}px`;
}

// ------------------------------------------------------------------ the command menu

async function loadMenu() {
  if (!state.current) return;
  try {
    const { commands } = await api(`/api/menu?chat_id=${state.current.id}&user_id=${sender()}`);
    state.menu = commands;
  } catch (error) {
    state.menu = [];
  }
  $("#menu-button").hidden = state.menu.length === 0;
}

function commandList(box, commands, choose) {
  box.replaceChildren(
    ...commands.map((command) => {
      const item = document.createElement("button");
      item.type = "button";
      item.className = "command-item";
      const name = document.createElement("b");
      name.textContent = `/${command.command}`;
      const description = document.createElement("span");
      description.textContent = command.description;
      item.append(name, description);
      item.addEventListener("click", () => choose(command));
      return item;
    }),
  );
  box.hidden = commands.length === 0;
}

function toggleMenu() {
  const menu = $("#menu");
  if (!menu.hidden) {
    menu.hidden = true;
    return;
  }
  hideSuggestions();
  // As in Telegram: a command from the menu is sent at once.
  commandList(menu, state.menu, (command) => {
    menu.hidden = true;
    sendText(`/${command.command}`);
  });
}

function suggest() {
  const value = $("#input").value;
  const match = /^\/(\w*)$/.exec(value);
  if (!match) {
    hideSuggestions();
    return;
  }
  const found = state.menu.filter((command) => command.command.startsWith(match[1].toLowerCase()));
  // A command picked while typing is completed, to be followed by its arguments.
  commandList($("#suggest"), found, (command) => {
    $("#input").value = `/${command.command} `;
    hideSuggestions();
    $("#input").focus();
  });
}

function hideSuggestions() {
  $("#suggest").hidden = true;
}

// ------------------------------------------------------------------ inline mode

// The query of text that mentions the bot first (`@bot words`), or null when it does not.
function inlineQueryOf(text) {
  const prefix = `@${state.bot?.username} `;
  if (!state.bot || text.slice(0, prefix.length).toLowerCase() !== prefix.toLowerCase()) return null;
  return text.slice(prefix.length, prefix.length + INLINE_QUERY_LIMIT);
}

function inlineInput() {
  const inline = state.inline;
  const query = inlineQueryOf($("#input").value);
  clearTimeout(inline.timer);
  if (query === null) {
    closeInline();
    return;
  }
  if (query === inline.query) return;
  inline.timer = setTimeout(() => {
    inline.query = query;
    inline.generation += 1;
    fetchInline(query, "", inline.generation);
  }, INLINE_DEBOUNCE_MS);
}

function moreInline() {
  const inline = state.inline;
  if (inline.loading || !inline.nextOffset || $("#inline").hidden) return;
  fetchInline(inline.query, inline.nextOffset, inline.generation);
}

// One page of the bot's answer: the first replaces what the panel shows, the next add to it.
async function fetchInline(query, offset, generation) {
  const inline = state.inline;
  inline.loading = true;
  $("#inline").classList.add("loading");
  let answer;
  try {
    answer = await postJSON("/api/inline", {
      chat_id: state.current.id,
      user_id: sender(),
      query,
      offset,
    });
  } catch (error) {
    if (generation === inline.generation) showInline(null, offset, error.message);
    return;
  } finally {
    if (generation === inline.generation) {
      inline.loading = false;
      $("#inline").classList.remove("loading");
    }
  }
  if (generation === inline.generation) showInline(answer, offset);
}

function showInline(answer, offset, error) {
  const panel = $("#inline");
  const list = $("#inline-results");
  const first = offset === "";
  if (first) list.replaceChildren();
  state.inline.nextOffset = answer?.next_offset || "";
  for (const result of answer?.results || []) list.append(inlineResult(result, answer.query_id));
  if (first) renderInlineButton(answer?.button);
  const note = $("#inline-note");
  note.textContent = error ? `${error[0].toUpperCase()}${error.slice(1)}.` : "No results.";
  note.hidden = !error && (list.childElementCount > 0 || Boolean(answer?.button));
  panel.hidden = false;
  hideSuggestions();
  // A page that does not fill the panel can't be scrolled to its end: ask for the next now.
  if (scrolledToEnd(panel)) moreInline();
}

function scrolledToEnd(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
}

function renderInlineButton(button) {
  const element = $("#inline-button");
  element.hidden = !button;
  if (!button) return;
  element.textContent = button.text;
  element.onclick = () => {
    $("#input").value = "";
    autosize();
    closeInline();
    if (button.web_app) {
      openWebApp(button.web_app.url, button.text);
      return;
    }
    // As Telegram's apps do: the bot's own chat opens with `/start <parameter>`.
    const own = state.chats.find((chat) => chat.type === "private" && chat.id === sender());
    if (!own) {
      toast("This user has no chat with the bot in the playground.");
      return;
    }
    openChat(own);
    sendText(`/start ${button.start_parameter}`);
  };
}

// A result as Telegram's apps list it: its picture, or its title for an article.
function inlineResult(result, queryId) {
  const item = document.createElement("button");
  item.type = "button";
  item.className = "inline-result";
  item.setAttribute("role", "option");
  const label = result.title || result.description || result.caption || "Result";
  item.title = label;
  item.setAttribute("aria-label", label);
  const fileId = result.photo_file_id || result.mpeg4_file_id || result.gif_file_id
    || result.video_file_id;
  if (result.photo_file_id) {
    const image = document.createElement("img");
    image.src = `/media/${encodeURIComponent(fileId)}`;
    image.alt = label;
    image.loading = "lazy";
    item.append(image);
  } else if (fileId) {
    const video = document.createElement("video");
    video.src = `/media/${encodeURIComponent(fileId)}`;
    video.muted = true;
    video.loop = true;
    video.autoplay = true;
    video.playsInline = true;
    item.append(video);
  } else {
    item.classList.add("article");
    const title = document.createElement("b");
    title.textContent = label;
    const description = document.createElement("span");
    description.textContent = result.description || "";
    item.append(title, description);
  }
  item.addEventListener("click", () => chooseInline(result, queryId));
  return item;
}

async function chooseInline(result, queryId) {
  const input = $("#input");
  const text = input.value;
  const reply = state.replyTo;
  const body = {
    chat_id: state.current.id,
    user_id: sender(),
    query_id: queryId,
    result_id: result.id,
  };
  if (reply) body.reply_to = reply.message_id;
  // As a sent message does: the composer empties at once, and gets the draft back on failure.
  input.value = "";
  autosize();
  cancelReply();
  closeInline();
  try {
    await postJSON("/api/inline/choose", body);
  } catch (error) {
    input.value = text;
    autosize();
    if (reply) startReply(reply);
    alertBox(error.message);
  }
}

function closeInline() {
  const inline = state.inline;
  clearTimeout(inline.timer);
  inline.query = null;
  inline.nextOffset = "";
  inline.loading = false;
  inline.generation += 1;
  $("#inline").hidden = true;
  $("#inline").classList.remove("loading");
}

// ------------------------------------------------------------------ toasts, alerts, theme

function toast(text) {
  const element = document.createElement("div");
  element.className = "toast";
  element.textContent = text;
  $("#toasts").append(element);
  setTimeout(() => element.remove(), 3500);
}

function alertBox(text) {
  $("#alert-text").textContent = text;
  const dialog = $("#alert");
  if (!dialog.open) dialog.showModal();
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  const button = $("#theme");
  const other = theme === "dark" ? "Light" : "Dark";
  button.title = `${other} theme`;
  button.setAttribute("aria-label", `${other} theme`);
  localStorage.setItem("playground-theme", theme);
}

// ------------------------------------------------------------------ start

function start() {
  const saved = localStorage.getItem("playground-theme");
  const dark = window.matchMedia?.("(prefers-color-scheme: dark)").matches;
  setTheme(saved || (dark ? "dark" : "light"));
  $("#theme").addEventListener("click", () =>
    setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));

  const input = $("#input");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape") {
      hideSuggestions();
      closeInline();
      $("#menu").hidden = true;
      cancelReply();
    }
  });
  input.addEventListener("input", () => {
    autosize();
    suggest();
    inlineInput();
  });
  $("#composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("#file").addEventListener("change", (event) => setPhotos(event.target.files));
  $("#attach-cancel").addEventListener("click", () => {
    setPhotos([]);
    $("#file").value = "";
  });
  $("#reply-cancel").addEventListener("click", cancelReply);
  $("#menu-button").addEventListener("click", toggleMenu);
  $("#inline").addEventListener("scroll", () => {
    if (scrolledToEnd($("#inline"))) moreInline();
  });
  $("#webapp-close").addEventListener("click", closeWebApp);
  $("#messages").addEventListener("scroll", () => {
    state.atBottom = nearBottom();
  });
  // Photos dropped on the chat are attached, as in Telegram's apps.
  $("#chat").addEventListener("dragover", (event) => event.preventDefault());
  $("#chat").addEventListener("drop", (event) => {
    event.preventDefault();
    setPhotos(event.dataTransfer.files);
  });
  connect();
}

start();
