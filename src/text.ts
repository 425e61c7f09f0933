/** `text` cut to `max` characters, saying how much was left out: messages that quote input stay bounded. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length - max} more characters)`;
}
