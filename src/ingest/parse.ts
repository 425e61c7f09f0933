import { convert as htmlToText } from 'html-to-text';
import mammoth from 'mammoth';
import JSZip from 'jszip';
import { DOMParser } from '@xmldom/xmldom';
import { extractText as extractPdfText, getDocumentProxy } from 'unpdf';

/** Why a file could not be indexed, as a vector store file's `last_error.code` names it. */
export class FileParseError extends Error {
  constructor(
    readonly code: 'unsupported_file' | 'invalid_file',
    message: string,
  ) {
    super(message);
    this.name = 'FileParseError';
  }
}

type Kind = 'pdf' | 'docx' | 'pptx' | 'html' | 'text';

/** Extensions read as plain text: prose, data and source code. */
const TEXT_EXTENSIONS = new Set(
  (
    'txt text md markdown mdx rst adoc tex log csv tsv json jsonl ndjson xml yaml yml toml ini cfg conf env properties ' +
    'c h cc cpp cxx hpp hh cs css scss less go java js mjs cjs jsx ts tsx mts cts py pyi rb php sh bash zsh fish ps1 sql ' +
    'swift kt kts scala rs lua pl pm r m mm dart vue svelte ex exs erl hs ml clj groovy gradle tf proto graphql gql dockerfile makefile'
  ).split(' '),
);
const KIND_BY_EXTENSION: Record<string, Kind> = { pdf: 'pdf', docx: 'docx', pptx: 'pptx', html: 'html', htm: 'html', xhtml: 'html' };

function extensionOf(filename: string): string {
  const base = filename.toLowerCase().split('/').pop() ?? '';
  const dot = base.lastIndexOf('.');
  return dot >= 0 ? base.slice(dot + 1) : base;
}

async function zipKind(bytes: Buffer): Promise<Kind | undefined> {
  try {
    const zip = await JSZip.loadAsync(bytes);
    if (zip.file('word/document.xml')) return 'docx';
    if (zip.file(/^ppt\/slides\/slide\d+\.xml$/).length > 0) return 'pptx';
  } catch {
    // not a zip after all
  }
  return undefined;
}

/** What a file is: by its extension, else by its first bytes. */
async function kindOf(bytes: Buffer, filename: string): Promise<Kind | undefined> {
  const extension = extensionOf(filename);
  const known = KIND_BY_EXTENSION[extension];
  if (known) return known;
  if (TEXT_EXTENSIONS.has(extension)) return 'text';
  if (bytes.subarray(0, 5).toString('latin1') === '%PDF-') return 'pdf';
  if (bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) return zipKind(bytes);
  // Anything else is text if it reads as UTF-8 without NUL bytes.
  if (bytes.includes(0)) return undefined;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return 'text';
  } catch {
    return undefined;
  }
}

async function pdfText(bytes: Buffer): Promise<string> {
  try {
    const document = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0 });
    const { text } = await extractPdfText(document, { mergePages: false });
    return (text as string[]).join('\n\n');
  } catch (error) {
    throw new FileParseError('invalid_file', `The file could not be read as a PDF: ${(error as Error).message}`);
  }
}

async function docxText(bytes: Buffer): Promise<string> {
  try {
    return (await mammoth.extractRawText({ buffer: bytes })).value;
  } catch (error) {
    throw new FileParseError('invalid_file', `The file could not be read as a DOCX document: ${(error as Error).message}`);
  }
}

/** A PPTX's slides in order, each a paragraph per line (the text of its `a:t` runs). */
async function pptxText(bytes: Buffer): Promise<string> {
  let zip: JSZip;
  try {
    zip = await JSZip.loadAsync(bytes);
  } catch (error) {
    throw new FileParseError('invalid_file', `The file could not be read as a PPTX presentation: ${(error as Error).message}`);
  }
  const slides = zip
    .file(/^ppt\/slides\/slide\d+\.xml$/)
    .map((entry) => ({ entry, number: Number(/slide(\d+)\.xml$/.exec(entry.name)![1]) }))
    .sort((a, b) => a.number - b.number);
  const texts: string[] = [];
  for (const { entry } of slides) {
    const document = new DOMParser().parseFromString(await entry.async('string'), 'application/xml');
    const paragraphs = Array.from(document.getElementsByTagName('a:p')).map((paragraph) =>
      Array.from(paragraph.getElementsByTagName('a:t'))
        .map((run) => run.textContent ?? '')
        .join(''),
    );
    texts.push(paragraphs.filter((line) => line.trim() !== '').join('\n'));
  }
  return texts.filter((text) => text !== '').join('\n\n');
}

function decodeText(bytes: Buffer): string {
  const text = new TextDecoder('utf-8').decode(bytes);
  return text.startsWith('\ufeff') ? text.slice(1) : text;
}

/**
 * The text of a file, by kind: PDF (unpdf: pdf.js built for servers, no canvas or worker), DOCX
 * (mammoth), PPTX (its slide XML, read with jszip and xmldom), HTML (html-to-text), and text of
 * any sort (prose, data, source code). Other files are `unsupported_file`; a file of a known kind
 * that cannot be read, or holds no text, is `invalid_file`.
 */
export async function extractText(bytes: Buffer, filename: string): Promise<string> {
  const kind = await kindOf(bytes, filename);
  if (!kind) {
    throw new FileParseError(
      'unsupported_file',
      `Files of this type are not supported for file_search (${extensionOf(filename) || 'no extension'}): use text, Markdown, HTML, JSON, CSV, source code, PDF, DOCX or PPTX.`,
    );
  }
  let text: string;
  switch (kind) {
    case 'pdf':
      text = await pdfText(bytes);
      break;
    case 'docx':
      text = await docxText(bytes);
      break;
    case 'pptx':
      text = await pptxText(bytes);
      break;
    case 'html':
      text = htmlToText(decodeText(bytes), { wordwrap: false, selectors: [{ selector: 'a', options: { ignoreHref: true } }, { selector: 'img', format: 'skip' }] });
      break;
    case 'text':
      text = decodeText(bytes);
      break;
  }
  if (text.trim() === '') throw new FileParseError('invalid_file', 'No text could be extracted from the file.');
  return text;
}
