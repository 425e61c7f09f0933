/** A URL fit for logs and banners: passwords and secret-looking query values replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    // libpq-style URLs may carry secrets in the query string too
    for (const key of [...parsed.searchParams.keys()]) {
      if (/pass|key|secret|token/i.test(key)) parsed.searchParams.set(key, '***');
    }
    return parsed.toString();
  } catch {
    return 'postgresql (unparseable url)';
  }
}
