// The app shell's service worker: after the first visit the page loads offline. The model itself
// lives in IndexedDB, not here. Hashed build assets are immutable (cache first); the page itself is
// network first so a new deployment is picked up, with the cached copy when offline.
const CACHE = 'phi2-shell-v1';

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(['./', './index.html', './favicon.svg'])));
  self.skipWaiting();
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k)))).then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  // Only this origin's GETs: model downloads from the Hub, Range requests and uploads pass straight through.
  if (request.method !== 'GET' || url.origin !== self.location.origin || request.headers.has('range')) return;
  const immutable = url.pathname.includes('/assets/');
  event.respondWith(immutable ? cacheFirst(request) : networkFirst(request));
});

async function cacheFirst(request) {
  const cached = await caches.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) (await caches.open(CACHE)).put(request, response.clone());
  return response;
}

async function networkFirst(request) {
  try {
    const response = await fetch(request);
    if (response.ok) (await caches.open(CACHE)).put(request, response.clone());
    return response;
  } catch (err) {
    const cached = (await caches.match(request)) ?? (request.mode === 'navigate' ? await caches.match('./index.html') : undefined);
    if (cached) return cached;
    throw err;
  }
}
