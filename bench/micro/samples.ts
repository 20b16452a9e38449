/** the messages the SIP benchmarks run on: sipp's default uac INVITE and its 200 */
export const INVITE = Buffer.from(
  'INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1234-1-0\r\n' +
    'From: sipp <sip:sipp@127.0.0.1:5061>;tag=1234SIPpTag001\r\nTo: service <sip:service@127.0.0.1:5060>\r\n' +
    'Call-ID: 1-1234@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: sip:sipp@127.0.0.1:5061\r\nMax-Forwards: 70\r\n' +
    'Subject: Performance Test\r\nContent-Type: application/sdp\r\nContent-Length: 129\r\n\r\n' +
    'v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n',
);

export const REPLY = Buffer.from(
  'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKsy0123456789abcdef;rport=5060\r\n' +
    'Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1234-1-0;received=127.0.0.1\r\n' +
    'From: sipp <sip:sipp@127.0.0.1:5061>;tag=1234SIPpTag001\r\nTo: service <sip:service@127.0.0.1:5060>;tag=5678SIPpTag011\r\n' +
    'Call-ID: 1-1234@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:127.0.0.1:5062;transport=UDP>\r\nContent-Length: 0\r\n\r\n',
);
