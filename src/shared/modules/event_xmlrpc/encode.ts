/**
 * The XML-RPC call OpenSIPS's event_xmlrpc sends, byte for byte: the event
 * name is the first parameter (a string), then one <param> per event
 * parameter. A named parameter carries its <name> inside the <param>, or,
 * with use_struct_param, a one-member <struct>. Integers are <int>, the rest
 * <string>. Unlike OpenSIPS, text is XML-escaped (&, <, >), so a value with
 * those characters still makes a well-formed document.
 */
import type { EviParam } from '../../evi/types.js';

export const USER_AGENT = 'switchyard XMLRPC Notifier';

export function xmlEscape(s: string): string {
  return /[&<>]/.test(s) ? s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;') : s;
}

function value(v: string | number): string {
  return typeof v === 'number'
    ? `<value><int>${Math.trunc(v)}</int></value>\n`
    : `<value><string>${xmlEscape(v)}</string></value>\n`;
}

export function xmlrpcBody(method: string, event: string, params: readonly EviParam[], useStruct: boolean): string {
  let out = `<?xml version="1.0"?>\n<methodCall>\n<methodName>${xmlEscape(method)}</methodName>\n<params>\n<param>\n<value><string>${xmlEscape(event)}</string></value>\n</param>\n`;
  for (const p of params) {
    out += '<param>\n';
    if (p.name !== null && p.name !== '') {
      const name = `<name>${xmlEscape(p.name)}</name>\n`;
      out += useStruct
        ? `<value><struct><member>\n${name}${value(p.value)}</member></struct></value>\n`
        : name + value(p.value);
    } else out += value(p.value);
    out += '</param>\n';
  }
  return out + '</params>\n</methodCall>';
}
